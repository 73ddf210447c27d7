//! Email: the send queue and the digests of messages members missed.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{ReadPool, SqlStore, Tx, EMAIL_CLAIM_LOCK};
use crate::sql::rows::placeholders;
use crate::{
    DigestLine, DigestNote, DigestRecipient, DueEmail, EmailKind, EmailResult, EmailStore,
    OutgoingEmail, QueuedDigest, StoreError, StoreResult,
};
use chatboard_core::auth::new_secret_token;

/// Rooms whose members one query reads: the worker asks for every room of a relay round.
const ROOMS_PER_RECIPIENTS_QUERY: usize = 200;

/// What a queued email belongs to.
#[derive(Clone, Copy)]
pub(super) enum EmailOwner {
    /// Nothing: sent as written.
    Nobody,
    /// An invitation: the email goes with it, and is not sent once it is withdrawn (see the
    /// migration `invitation_emails`).
    Invite(i64),
    /// A user's digest: written again before it is sent, withdrawn once they are gone or turned
    /// emails off (see the migration `digest_email_user`).
    Digest(i64),
}

/// Queues `email`, belonging to `owner`, as part of `tx`.
pub(super) async fn insert_email(
    tx: &mut Tx<'_>,
    email: &OutgoingEmail,
    owner: EmailOwner,
    now: DateTime<Utc>,
) -> StoreResult<i64> {
    let (invite_id, digest_user_id) = match owner {
        EmailOwner::Nobody => (None, None),
        EmailOwner::Invite(id) => (Some(id), None),
        EmailOwner::Digest(user) => (None, Some(user)),
    };
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO emails (kind, to_address, subject, body, status, next_attempt_at, created_at, \
           invite_id, digest_user_id) \
         VALUES ($1, $2, $3, $4, 'pending', $5, $5, $6, $7) RETURNING id",
    )
    .bind(email.kind.as_str())
    .bind(&email.to)
    .bind(&email.subject)
    .bind(&email.body)
    .bind(now)
    .bind(invite_id)
    .bind(digest_user_id)
    .fetch_one(&mut **tx)
    .await?;
    Ok(id)
}

/// The digest lines of `source` (`digest_items` or `digest_email_lines`, as `d`) where `key` is
/// `value`, up to `limit`, oldest first. Messages or rooms deleted since, and rooms the user no
/// longer sits in, still count as seen-to (they leave the digest with it), shown without text
/// (and, for a room left, without its name or the sender's).
async fn digest_lines(
    pool: &ReadPool,
    source: &str,
    key: &str,
    value: i64,
    limit: u32,
) -> StoreResult<Vec<DigestLine>> {
    #[derive(sqlx::FromRow)]
    struct Line {
        message_id: i64,
        room: Option<String>,
        org: Option<String>,
        first_name: Option<String>,
        last_name: Option<String>,
        email: Option<String>,
        body: Option<String>,
        is_deleted: Option<bool>,
        file_name: Option<String>,
        created_at: DateTime<Utc>,
    }
    let sql = format!(
        "SELECT d.message_id, r.name AS room, o.name AS org, s.first_name, s.last_name, \
               s.email, m.body, \
               CASE WHEN rm.user_id IS NULL THEN TRUE ELSE m.is_deleted END AS is_deleted, \
               m.file_name, d.created_at \
             FROM {source} \
               LEFT JOIN room_members rm ON rm.room_id = d.room_id AND rm.user_id = d.user_id \
               LEFT JOIN rooms r ON r.id = d.room_id AND rm.user_id IS NOT NULL \
               LEFT JOIN orgs o ON o.id = r.org_id \
               LEFT JOIN messages m ON m.room_id = d.room_id AND m.id = d.message_id \
               LEFT JOIN users s ON s.id = m.sender_id AND rm.user_id IS NOT NULL \
             WHERE {key} = $1 ORDER BY d.created_at, d.message_id LIMIT $2"
    );
    let rows: Vec<Line> = sqlx::query_as(&sql)
        .bind(value)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?;
    Ok(rows
        .into_iter()
        .map(|l| {
            let name = format!(
                "{} {}",
                l.first_name.unwrap_or_default(),
                l.last_name.unwrap_or_default()
            );
            let sender = match name.trim() {
                "" => l.email.unwrap_or_else(|| "someone".to_owned()),
                name => name.to_owned(),
            };
            // A message gone since (deleted, or its room deleted) counts as deleted.
            let deleted = l.is_deleted.unwrap_or(true);
            DigestLine {
                message_id: l.message_id,
                room_name: l.room.unwrap_or_else(|| "a deleted room".to_owned()),
                org_name: l.org.unwrap_or_default(),
                sender,
                body: if deleted {
                    String::new()
                } else {
                    l.body.unwrap_or_default()
                },
                file_name: if deleted { None } else { l.file_name },
                deleted,
                created_at: l.created_at,
            }
        })
        .collect())
}

#[async_trait]
impl EmailStore for SqlStore {
    #[tracing::instrument(level = "debug", skip_all, fields(rooms = rooms.len()))]
    async fn digest_recipients(&self, rooms: &[i64]) -> StoreResult<HashMap<i64, Vec<i64>>> {
        let mut by_room: HashMap<i64, Vec<i64>> = HashMap::new();
        for chunk in rooms.chunks(ROOMS_PER_RECIPIENTS_QUERY) {
            // One row per room, its members' ids joined: a busy round asks for thousands of
            // members, and each row costs a hop between the driver's thread and ours (SQLite)
            // or a row on the wire (PostgreSQL). `string_agg` is in both (SQLite since 3.44).
            // The few who opted out come from their partial index, read once per query, rather
            // than from each member's users row.
            let sql = format!(
                "SELECT m.room_id, string_agg(CAST(m.user_id AS TEXT), ',') \
                 FROM room_members m WHERE m.room_id IN ({}) \
                 AND m.user_id NOT IN (SELECT id FROM users WHERE NOT email_notifications) \
                 GROUP BY m.room_id",
                placeholders(1, chunk.len())
            );
            let mut query = sqlx::query_as::<_, (i64, String)>(&sql);
            for room in chunk {
                query = query.bind(*room);
            }
            for (room, ids) in query.fetch_all(&self.read).await? {
                let mut users = ids
                    .split(',')
                    .map(str::parse::<i64>)
                    .collect::<Result<Vec<i64>, _>>()
                    .map_err(|e| StoreError::Database(sqlx::Error::Decode(Box::new(e))))?;
                users.sort_unstable();
                by_room.insert(room, users);
            }
        }
        Ok(by_room)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn add_digest_items(
        &self,
        notes: &[DigestNote],
        message_id: i64,
        room_id: i64,
        created_at: DateTime<Utc>,
        mentioned: bool,
    ) -> StoreResult<()> {
        if notes.is_empty() {
            return Ok(());
        }
        let mut events: Vec<&str> = notes.iter().map(|n| n.event_id.as_str()).collect();
        events.sort_unstable();
        events.dedup();
        let mut tx = self.write.begin().await?;
        // Each event is noted once: in the transaction of its notes, so a job that fails
        // after it noted nothing, and one handed over again finds it taken.
        let mut fresh: HashSet<String> = HashSet::new();
        let now = Utc::now();
        for chunk in events.chunks(500) {
            let sql = format!(
                "INSERT INTO digest_events (event_id, noted_at) VALUES {} \
                 ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
                (0..chunk.len())
                    .map(|i| format!("(${}, $1)", i + 2))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let mut query = sqlx::query_scalar::<_, String>(&sql).bind(now);
            for event in chunk {
                query = query.bind(*event);
            }
            fresh.extend(query.fetch_all(&mut *tx).await?);
        }
        // A member may come twice (a mention taken out by an edit and put back by the next):
        // one row each, or PostgreSQL refuses an upsert that meets its own row again.
        let mut user_ids: Vec<i64> = notes
            .iter()
            .filter(|n| fresh.contains(&n.event_id))
            .map(|n| n.user_id)
            .collect();
        user_ids.sort_unstable();
        user_ids.dedup();
        for chunk in user_ids.chunks(200) {
            let values: Vec<String> = (0..chunk.len())
                .map(|i| format!("(${}, $1, $2, $3, $4, $5)", i + 6))
                .collect();
            // The message may already wait there (its `message.created` came first): a mention
            // only makes it more urgent.
            let sql = format!(
                "INSERT INTO digest_items (user_id, message_id, room_id, created_at, mentioned, noted_at) \
                 VALUES {} ON CONFLICT (user_id, message_id) DO UPDATE \
                 SET mentioned = (digest_items.mentioned OR excluded.mentioned)",
                values.join(", ")
            );
            let mut query = sqlx::query(&sql)
                .bind(message_id)
                .bind(room_id)
                .bind(created_at)
                .bind(mentioned)
                .bind(now);
            for user in chunk {
                query = query.bind(*user);
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn due_digests(
        &self,
        cutoff: DateTime<Utc>,
        mention_cutoff: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<i64>> {
        // Only the due items are read, through the two indexes on when items were noted: the
        // table holds every offline member's missed messages for a whole window, and a round
        // that scanned it (SQLite: its deletion holding the writer) grew with it.
        let due_sql = "SELECT user_id FROM ( \
               SELECT user_id, COALESCE(noted_at, created_at) AS noted FROM digest_items \
                 WHERE COALESCE(noted_at, created_at) <= $1 \
               UNION ALL \
               SELECT user_id, COALESCE(noted_at, created_at) AS noted FROM digest_items \
                 WHERE mentioned AND COALESCE(noted_at, created_at) <= $3) due \
             GROUP BY user_id ORDER BY MIN(noted) LIMIT $2";
        let mut cleaned: HashSet<i64> = HashSet::new();
        loop {
            let due: Vec<i64> = sqlx::query_scalar(due_sql)
                .bind(cutoff)
                .bind(i64::from(limit))
                .bind(mention_cutoff)
                .fetch_all(&self.read)
                .await?;
            // Seats lost (left, removed, demoted, the room deleted), emails turned off and
            // messages deleted since the messages were noted: whatever noted them, they are not
            // the user's to read by email (a deleted message is no longer news: an `@room`
            // posted by mistake and deleted at once mailed every offline member a "(deleted)"),
            // and a user due only through them would be due every round. A mention an edit
            // took back no longer hurries the digest. Both for the users found due, who are
            // then looked for again.
            let fresh: Vec<i64> = due
                .iter()
                .copied()
                .filter(|u| !cleaned.contains(u))
                .collect();
            if fresh.is_empty() {
                return Ok(due);
            }
            let users = placeholders(1, fresh.len());
            let dropped_sql = format!(
                "DELETE FROM digest_items WHERE user_id IN ({users}) AND (NOT EXISTS ( \
                   SELECT 1 FROM room_members rm \
                   WHERE rm.room_id = digest_items.room_id AND rm.user_id = digest_items.user_id) \
                 OR user_id IN (SELECT id FROM users WHERE NOT email_notifications) \
                 OR NOT EXISTS (SELECT 1 FROM messages m WHERE m.id = digest_items.message_id \
                   AND m.room_id = digest_items.room_id AND NOT m.is_deleted))"
            );
            let unmentioned_sql = format!(
                "UPDATE digest_items SET mentioned = FALSE \
                 WHERE user_id IN ({users}) AND mentioned AND NOT EXISTS ( \
                   SELECT 1 FROM mentions mn \
                   WHERE mn.message_id = digest_items.message_id AND mn.user_id = digest_items.user_id)"
            );
            let mut changed = 0;
            for sql in [&dropped_sql, &unmentioned_sql] {
                let mut query = sqlx::query(sql);
                for user in &fresh {
                    query = query.bind(*user);
                }
                changed += query.execute(&self.write).await?.rows_affected();
            }
            if changed == 0 {
                return Ok(due);
            }
            cleaned.extend(fresh);
        }
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn digest_of(
        &self,
        user_id: i64,
        limit: u32,
    ) -> StoreResult<Option<(DigestRecipient, Vec<DigestLine>)>> {
        let mut recipient: Option<(String, Option<String>)> = sqlx::query_as(
            "SELECT email, email_token FROM users WHERE id = $1 AND email_notifications",
        )
        .bind(user_id)
        .fetch_optional(&self.read)
        .await?;
        // The token is made with the first digest (users who never get one never need it),
        // and only then written: the writer is not taken for every digest.
        if let Some((_, None)) = recipient {
            recipient = sqlx::query_as(
                "UPDATE users SET email_token = COALESCE(email_token, $2) \
                 WHERE id = $1 AND email_notifications RETURNING email, email_token",
            )
            .bind(user_id)
            .bind(new_secret_token())
            .fetch_optional(&self.write)
            .await?;
        }
        let Some((address, unsubscribe_token)) = recipient else {
            return Ok(None);
        };
        let recipient = DigestRecipient {
            address,
            unsubscribe_token,
        };
        let lines = digest_lines(&self.read, "digest_items d", "d.user_id", user_id, limit).await?;
        Ok(Some((recipient, lines)))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn queue_digest(
        &self,
        user_id: i64,
        message_ids: &[i64],
        email: OutgoingEmail,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut tx = self.write.begin().await?;
        let email_id = insert_email(&mut tx, &email, EmailOwner::Digest(user_id), now).await?;
        // The email keeps its lines: the mailer writes it again from them before sending.
        for chunk in message_ids.chunks(500) {
            let sql = format!(
                "INSERT INTO digest_email_lines (email_id, user_id, message_id, room_id, created_at) \
                 SELECT $1, user_id, message_id, room_id, created_at FROM digest_items \
                 WHERE user_id = $2 AND message_id IN ({})",
                placeholders(3, chunk.len())
            );
            let mut query = sqlx::query(&sql).bind(email_id).bind(user_id);
            for id in chunk {
                query = query.bind(*id);
            }
            query.execute(&mut *tx).await?;
        }
        let mut taken = 0;
        for chunk in message_ids.chunks(500) {
            let sql = format!(
                "DELETE FROM digest_items WHERE user_id = $1 AND message_id IN ({})",
                placeholders(2, chunk.len())
            );
            let mut query = sqlx::query(&sql).bind(user_id);
            for id in chunk {
                query = query.bind(*id);
            }
            taken += query.execute(&mut *tx).await?.rows_affected();
        }
        if taken < message_ids.len() as u64 {
            // Another worker wrote this digest first.
            tx.rollback().await?;
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn queued_digest(&self, email_id: i64) -> StoreResult<QueuedDigest> {
        // Whose it is, and whether it is still to be sent to them: settled meanwhile (its
        // recipient turned emails off), the user gone, or emails off, it is withdrawn.
        // The recipient from the email, or from its lines for one queued before the column.
        type Row = (
            String,
            Option<i64>,
            Option<String>,
            Option<bool>,
            Option<String>,
        );
        let row: Option<Row> = sqlx::query_as(
            "SELECT r.status, r.user_id, u.email, u.email_notifications, u.email_token FROM ( \
               SELECT e.status, COALESCE(e.digest_user_id, \
                 (SELECT l.user_id FROM digest_email_lines l WHERE l.email_id = e.id LIMIT 1)) \
                 AS user_id \
               FROM emails e WHERE e.id = $1) r \
             LEFT JOIN users u ON u.id = r.user_id",
        )
        .bind(email_id)
        .fetch_optional(&self.read)
        .await?;
        let Some((status, user, address, notifications, unsubscribe_token)) = row else {
            return Ok(QueuedDigest::Withdrawn);
        };
        if user.is_none() {
            return Ok(QueuedDigest::AsWritten);
        }
        let (Some(address), Some(true), "pending") = (address, notifications, status.as_str())
        else {
            return Ok(QueuedDigest::Withdrawn);
        };
        let lines = digest_lines(
            &self.read,
            "digest_email_lines d",
            "d.email_id",
            email_id,
            u32::MAX,
        )
        .await?;
        // Every message it quotes deleted since it was written: nothing is left to tell.
        Ok(if lines.iter().all(|l| l.deleted) {
            QueuedDigest::Withdrawn
        } else {
            let recipient = DigestRecipient {
                address,
                unsubscribe_token,
            };
            QueuedDigest::Lines(recipient, lines)
        })
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn prune_settled_emails(&self, before: DateTime<Utc>, batch: u32) -> StoreResult<u64> {
        let Some(bound) = self.first_id_since("emails", before).await? else {
            return Ok(0);
        };
        self.delete_in_batches(
            "DELETE FROM emails WHERE id IN ( \
               SELECT id FROM emails WHERE id < $1 AND status <> 'pending' ORDER BY id LIMIT $2)",
            bound,
            batch,
        )
        .await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn prune_digest_lines(&self) -> StoreResult<u64> {
        // Looked for on a reader, deleted only when there are any.
        let settled = "SELECT 1 FROM digest_email_lines l WHERE NOT EXISTS ( \
               SELECT 1 FROM emails e WHERE e.id = l.email_id AND e.status = 'pending') LIMIT 1";
        if sqlx::query(settled)
            .fetch_optional(&self.read)
            .await?
            .is_none()
        {
            return Ok(0);
        }
        Ok(sqlx::query(
            "DELETE FROM digest_email_lines WHERE NOT EXISTS ( \
               SELECT 1 FROM emails e \
               WHERE e.id = digest_email_lines.email_id AND e.status = 'pending')",
        )
        .execute(&self.write)
        .await?
        .rows_affected())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn queue_email(&self, email: OutgoingEmail, now: DateTime<Utc>) -> StoreResult<i64> {
        let mut tx = self.write.begin().await?;
        let id = insert_email(&mut tx, &email, EmailOwner::Nobody, now).await?;
        tx.commit().await?;
        Ok(id)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn claim_due_emails(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<DueEmail>> {
        // As for webhook deliveries: the pick runs once, and the outer conditions keep a racing
        // claim off what another one took.
        let sql = format!(
            "WITH picked AS MATERIALIZED ( \
               SELECT e.id FROM emails e WHERE e.status = 'pending' AND e.next_attempt_at <= $1 \
               ORDER BY e.next_attempt_at LIMIT $3 {EMAIL_CLAIM_LOCK}) \
             UPDATE emails SET next_attempt_at = $2 \
             WHERE id IN (SELECT id FROM picked) AND status = 'pending' AND next_attempt_at <= $1 \
             RETURNING id, attempts, kind, to_address, subject, body"
        );
        let rows: Vec<(i64, i32, String, String, String, String)> = sqlx::query_as(&sql)
            .bind(now)
            .bind(lease_until)
            .bind(i64::from(limit))
            .fetch_all(&self.write)
            .await?;
        rows.into_iter()
            .map(|(id, attempts, kind, to, subject, body)| {
                let kind = match kind.as_str() {
                    "invitation" => EmailKind::Invitation,
                    "digest" => EmailKind::Digest,
                    other => {
                        return Err(StoreError::Database(sqlx::Error::Decode(
                            format!("email {id} kind {other:?}").into(),
                        )))
                    }
                };
                Ok(DueEmail {
                    id,
                    attempts,
                    email: OutgoingEmail {
                        kind,
                        to,
                        subject,
                        body,
                    },
                })
            })
            .collect()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(emails = ids.len()))]
    async fn release_emails(
        &self,
        ids: &[i64],
        claimed_until: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        for chunk in ids.chunks(500) {
            let sql = format!(
                "UPDATE emails SET next_attempt_at = $1 \
                 WHERE status = 'pending' AND next_attempt_at = $2 AND id IN ({})",
                placeholders(3, chunk.len())
            );
            let mut query = sqlx::query(&sql).bind(at).bind(claimed_until);
            for id in chunk {
                query = query.bind(*id);
            }
            query.execute(&self.write).await?;
        }
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn record_email(
        &self,
        id: i64,
        claimed_until: DateTime<Utc>,
        result: EmailResult,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let (status, error, next, sent_at) = match result {
            EmailResult::Sent => ("sent", None, None, Some(now)),
            EmailResult::Retry {
                error,
                next_attempt_at,
            } => ("pending", Some(error), Some(next_attempt_at), None),
            EmailResult::Failed { error } => ("failed", Some(error), None, None),
        };
        let mut tx = self.write.begin().await?;
        let recorded = sqlx::query(
            "UPDATE emails SET status = $2, attempts = attempts + 1, last_error = $3, \
               next_attempt_at = $4, sent_at = $5, \
               body = CASE WHEN $2 = 'pending' THEN body ELSE '' END \
             WHERE id = $1 AND status = 'pending' AND next_attempt_at = $6",
        )
        .bind(id)
        .bind(status)
        .bind(error)
        .bind(next)
        .bind(sent_at)
        .bind(claimed_until)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if recorded > 0 && status != "pending" {
            // Settled by this claim: its lines are of no more use. (A lapsed claim records
            // nothing, and leaves the lines to the claim that took the email over.)
            sqlx::query("DELETE FROM digest_email_lines WHERE email_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn email_still_claimed(
        &self,
        id: i64,
        claimed_until: DateTime<Utc>,
    ) -> StoreResult<bool> {
        // The same match as `record_email`'s: a claim is its lease's end.
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM emails WHERE id = $1 AND status = 'pending' AND next_attempt_at = $2",
        )
        .bind(id)
        .bind(claimed_until)
        .fetch_optional(&self.write)
        .await?;
        Ok(found.is_some())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn email_backlog(&self) -> StoreResult<i64> {
        let (count,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM emails WHERE status = 'pending'")
                .fetch_one(&self.read)
                .await?;
        Ok(count)
    }
}
