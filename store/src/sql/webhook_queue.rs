//! What happens to a webhook's queued deliveries when the webhook changes: parked while it is
//! switched off, due again when it is switched on, given up when its events no longer include
//! theirs; and to one whose message was deleted (or edited) before it went out. Claims of due ones.

use std::collections::{HashMap, HashSet};

use chatboard_core::events::{EventType, OutboxEvent};
use chrono::{DateTime, Utc};

use super::{SqlStore, Tx, CLAIM_LOCK, DUE_PER_WEBHOOK, PICKED_LOCK};
use crate::sql::rows::{placeholders, DueRow, DUE_SELECT};
use crate::{DueDelivery, StoreResult};

/// Parks the waiting deliveries of a webhook being switched off (no due time: claims never
/// look at them), so that a large paused backlog costs the others nothing. Deliveries being
/// attempted stay claimed: their outcomes park them when they are recorded.
pub(super) async fn pause_deliveries(
    tx: &mut Tx<'_>,
    webhook_id: i64,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE webhook_deliveries SET next_attempt_at = NULL, claimed_until = NULL \
         WHERE webhook_id = $1 AND status IN ('pending', 'retrying') \
           AND (claimed_until IS NULL OR claimed_until <= $2)",
    )
    .bind(webhook_id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Gives up the queued deliveries of events the webhook no longer takes (`events`, its new
/// filter): an admin narrowing it to stop messages reaching a third party meant the ones
/// already queued too (up to a week of retries, or parked while it is off). One being
/// attempted now is left to its attempt, and test deliveries (asked for by name) are kept.
pub(super) async fn drop_unwanted_deliveries(
    tx: &mut Tx<'_>,
    webhook_id: i64,
    events: &[String],
    now: DateTime<Utc>,
) -> StoreResult<()> {
    if events.iter().any(|e| e == "*") {
        return Ok(());
    }
    let kept = if events.is_empty() {
        String::new()
    } else {
        format!("AND event_type NOT IN ({})", placeholders(3, events.len()))
    };
    let sql = format!(
        "UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = NULL, \
           claimed_until = NULL, last_error = 'no longer among the webhook''s events' \
         WHERE webhook_id = $1 AND status IN ('pending', 'retrying') \
           AND event_type <> 'webhook.test' \
           AND (claimed_until IS NULL OR claimed_until <= $2) {kept}"
    );
    let mut query = sqlx::query(&sql).bind(webhook_id).bind(now);
    for event in events {
        query = query.bind(event);
    }
    query.execute(&mut **tx).await?;
    Ok(())
}

/// `next_attempt_at`'s new value `$n` for a delivery whose claim ends, unless its webhook is
/// switched off meanwhile: then the delivery is parked.
pub(super) fn unless_paused(n: usize) -> String {
    format!(
        "CASE WHEN EXISTS (SELECT 1 FROM webhooks w \
           WHERE w.id = webhook_deliveries.webhook_id AND w.is_active) THEN ${n} ELSE NULL END"
    )
}

/// Makes the parked deliveries of a webhook switched back on due now.
pub(super) async fn resume_deliveries(
    tx: &mut Tx<'_>,
    webhook_id: i64,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE webhook_deliveries SET next_attempt_at = $2 \
         WHERE webhook_id = $1 AND status IN ('pending', 'retrying') AND next_attempt_at IS NULL",
    )
    .bind(webhook_id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Where in its data an event carries a message's text (a JSON pointer), if it carries one.
fn message_pointer(event: &OutboxEvent) -> Option<&'static str> {
    let t = event.event_type.as_str();
    if t == EventType::MessageCreated.as_str() || t == EventType::MessageUpdated.as_str() {
        Some("")
    } else if t == EventType::MessageMentioned.as_str() {
        Some("/message")
    } else {
        None
    }
}

/// The message (room, id) whose text a delivery's event carries, if it carries one.
fn message_carried(event: &OutboxEvent) -> Option<(i64, i64)> {
    let message = event.data.pointer(message_pointer(event)?)?;
    Some((message.get("room")?.as_i64()?, message.get("id")?.as_i64()?))
}

/// The (message, person) a `message.mentioned` event is about.
fn mention_carried(event: &OutboxEvent) -> Option<(i64, i64)> {
    if event.event_type != EventType::MessageMentioned.as_str() {
        return None;
    }
    let message = event.data.get("message")?.get("id")?.as_i64()?;
    Some((message, event.data.get("user_id")?.as_i64()?))
}

/// When a message was last edited, if it was.
type Edited = Option<DateTime<Utc>>;

/// A message's text as it stands, and when it was last edited.
type Standing = (String, Edited);

/// Gives the message an event carries the text (and edit time) it has now.
fn as_it_stands(event: &mut OutboxEvent, body: &str, edited_at: Edited) {
    let Some(pointer) = message_pointer(event) else {
        return;
    };
    let Some(serde_json::Value::Object(message)) = event.data.pointer_mut(pointer) else {
        return;
    };
    if message.get("body").and_then(|b| b.as_str()) == Some(body) {
        return;
    }
    message.insert("body".into(), body.into());
    if let Some(at) = edited_at {
        message.insert("edited_at".into(), serde_json::json!(at));
    }
}

impl SqlStore {
    /// One claim of up to `limit` deliveries: how many were claimed, and those returned (the
    /// ones whose event cannot be read or whose message is gone are marked failed instead).
    pub(super) async fn claim_some(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
        skip: &[i64],
    ) -> StoreResult<(usize, Vec<DueDelivery>)> {
        // The pick is materialised so that it runs once: re-run inside the update (PostgreSQL
        // may re-scan a plain subquery), SKIP LOCKED could pick other rows and claim more than
        // `limit`. The outer conditions repeat the inner ones so that a claim racing another
        // one takes only what is still due.
        // With webhooks to skip (busy with all their slots), each other one's oldest due are
        // read from the (webhook, due time) index: walking the due order instead read past
        // every row of the busy ones, a slow target's whole backlog, at every claim.
        let pick = if skip.is_empty() {
            format!(
                "SELECT d.id FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id \
                 WHERE d.status IN ('pending', 'retrying') AND d.next_attempt_at <= $1 AND w.is_active \
                 ORDER BY d.next_attempt_at LIMIT $3 {CLAIM_LOCK}"
            )
        } else {
            format!(
                "SELECT id FROM webhook_deliveries WHERE id IN ( \
                   SELECT d.id FROM {DUE_PER_WEBHOOK} \
                   WHERE w.is_active AND w.id NOT IN ({}) \
                   ORDER BY d.next_attempt_at LIMIT $3) {PICKED_LOCK}",
                placeholders(4, skip.len())
            )
        };
        let sql = format!(
            "WITH picked AS MATERIALIZED ({pick}) \
             UPDATE webhook_deliveries SET next_attempt_at = $2, claimed_until = $2 \
             WHERE id IN (SELECT id FROM picked) \
               AND status IN ('pending', 'retrying') AND next_attempt_at <= $1 \
             RETURNING id"
        );
        let mut query = sqlx::query_as(&sql)
            .bind(now)
            .bind(lease_until)
            .bind(i64::from(limit));
        for webhook in skip {
            query = query.bind(*webhook);
        }
        let claimed: Vec<(i64,)> = query.fetch_all(&self.write).await?;
        if claimed.is_empty() {
            return Ok((0, Vec::new()));
        }
        let sql = format!(
            "{DUE_SELECT} ({}) ORDER BY d.id",
            placeholders(1, claimed.len())
        );
        let mut query = sqlx::query_as(&sql);
        for (id,) in &claimed {
            query = query.bind(*id);
        }
        let rows: Vec<DueRow> = query.fetch_all(&self.write).await?;
        let mut due = Vec::with_capacity(rows.len());
        for row in rows {
            let id = row.id();
            match DueDelivery::try_from(row) {
                Ok(delivery) => due.push(delivery),
                // One unreadable event must not hold back the others claimed with it.
                Err(e) => {
                    tracing::error!(error = %e, delivery_id = id, "undeliverable event; delivery marked failed");
                    sqlx::query(
                        "UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = NULL, \
                           last_error = 'the event could not be read' WHERE id = $1",
                    )
                    .bind(id)
                    .execute(&self.write)
                    .await?;
                }
            }
        }
        Ok((claimed.len(), self.as_they_stand(due).await?))
    }

    /// The claimed deliveries as they stand now. Those whose message was deleted (or purged)
    /// since their event are given up: a deleted message keeps nothing of what it said, and a
    /// delivery retried for hours after the deletion would still have carried its text to the
    /// webhook's target. So are mentions an edit took away. The others carry their message's
    /// text as it stands: one edited since its event (a secret posted by mistake and edited
    /// out) no longer sends what the edit took away.
    pub(super) async fn as_they_stand(
        &self,
        due: Vec<DueDelivery>,
    ) -> StoreResult<Vec<DueDelivery>> {
        let carried: Vec<(i64, i64)> = due
            .iter()
            .filter_map(|d| message_carried(&d.event))
            .collect();
        if carried.is_empty() {
            return Ok(due);
        }
        let mut live: HashMap<(i64, i64), Standing> = HashMap::new();
        for chunk in carried.chunks(250) {
            // By (room, id), the messages' key (no index has the id alone), one lookup each.
            let pairs: Vec<String> = (0..chunk.len())
                .map(|i| format!("(room_id = ${} AND id = ${})", 2 * i + 1, 2 * i + 2))
                .collect();
            let sql = format!(
                // A deleted room's messages wait to be purged (`erased_rooms`): gone too.
                "SELECT room_id, id, body, edited_at FROM messages WHERE NOT is_deleted \
                   AND room_id NOT IN (SELECT room_id FROM erased_rooms) AND ({})",
                pairs.join(" OR ")
            );
            let mut query = sqlx::query_as::<_, (i64, i64, String, Edited)>(&sql);
            for (room, id) in chunk {
                query = query.bind(*room).bind(*id);
            }
            let rows = query.fetch_all(&self.write).await?;
            live.extend(
                rows.into_iter()
                    .map(|(room, id, body, edited)| ((room, id), (body, edited))),
            );
        }
        let (kept, gone): (Vec<DueDelivery>, Vec<DueDelivery>) = due
            .into_iter()
            .partition(|d| message_carried(&d.event).is_none_or(|key| live.contains_key(&key)));
        self.give_up(&gone, "the message was deleted").await?;
        // A mention an edit took away is not sent either: it would tell the person's webhook
        // of a mention that no longer is, with text that no longer names them.
        let mentioned = self.still_mentioned(&kept).await?;
        let (mut kept, unmentioned): (Vec<DueDelivery>, Vec<DueDelivery>) = kept
            .into_iter()
            .partition(|d| mention_carried(&d.event).is_none_or(|pair| mentioned.contains(&pair)));
        self.give_up(&unmentioned, "the mention was edited out")
            .await?;
        for delivery in &mut kept {
            if let Some((body, edited_at)) =
                message_carried(&delivery.event).and_then(|key| live.get(&key))
            {
                as_it_stands(&mut delivery.event, body, *edited_at);
            }
        }
        Ok(kept)
    }

    /// Of the `message.mentioned` deliveries in `due`, the (message, person) pairs whose
    /// mention the message still makes.
    async fn still_mentioned(&self, due: &[DueDelivery]) -> StoreResult<HashSet<(i64, i64)>> {
        let pairs: Vec<(i64, i64)> = due
            .iter()
            .filter_map(|d| mention_carried(&d.event))
            .collect();
        let mut found = HashSet::new();
        for chunk in pairs.chunks(250) {
            let wanted: Vec<String> = (0..chunk.len())
                .map(|i| format!("(message_id = ${} AND user_id = ${})", 2 * i + 1, 2 * i + 2))
                .collect();
            let sql = format!(
                "SELECT message_id, user_id FROM mentions WHERE {}",
                wanted.join(" OR ")
            );
            let mut query = sqlx::query_as::<_, (i64, i64)>(&sql);
            for (message, user) in chunk {
                query = query.bind(*message).bind(*user);
            }
            found.extend(query.fetch_all(&self.write).await?);
        }
        Ok(found)
    }

    /// Marks the claimed deliveries `gone` failed for `why`, never to be attempted.
    async fn give_up(&self, gone: &[DueDelivery], why: &str) -> StoreResult<()> {
        for chunk in gone.chunks(500) {
            let sql = format!(
                "UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = NULL, \
                   claimed_until = NULL, last_error = $1 \
                 WHERE status IN ('pending', 'retrying') AND id IN ({})",
                placeholders(2, chunk.len())
            );
            let mut query = sqlx::query(&sql).bind(why);
            for delivery in chunk {
                query = query.bind(delivery.id);
            }
            query.execute(&self.write).await?;
        }
        Ok(())
    }
}
