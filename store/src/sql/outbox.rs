//! The event outbox: rows written inside the transaction of the change they describe.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Db, SqlStore, Tx};
use crate::sql::rows::{placeholders, MessageRow, OutboxRow};
use crate::{NewMessage, OutboxStore, StoreError, StoreResult};
use chatboard_core::events::{DomainEvent, OutboxEvent};
use chatboard_core::model::Message;

/// Rows one outbox insert statement takes at most (six parameters each).
const EVENTS_PER_STATEMENT: usize = 100;

/// Records `event` of organization `org_id` in the outbox as part of `tx`, with a fresh event id.
pub(super) async fn write_event(
    tx: &mut Tx<'_>,
    org_id: i64,
    event: &DomainEvent,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    write_events(tx, org_id, &[(event.clone(), now)]).await
}

/// An outbox row's values, in the insert's column order: `OUTBOX_COLUMNS`.
pub(super) struct EventRow {
    pub(super) event_id: String,
    pub(super) event_type: &'static str,
    pub(super) org_id: i64,
    pub(super) room_id: Option<i64>,
    pub(super) payload: String,
    pub(super) created_at: DateTime<Utc>,
}

/// The outbox's columns an insert names, in [`EventRow`]'s order.
pub(super) const OUTBOX_COLUMNS: &str =
    "outbox (event_id, event_type, org_id, room_id, payload, created_at)";

impl EventRow {
    /// The row recording `event` of organization `org_id`, with a fresh event id.
    pub(super) fn new(org_id: i64, event: &DomainEvent, at: DateTime<Utc>) -> StoreResult<Self> {
        let payload = event
            .payload()
            .map_err(|e| StoreError::Database(sqlx::Error::Encode(e.into())))?;
        Ok(Self {
            event_id: uuid::Uuid::new_v4().to_string(),
            event_type: event.event_type().as_str(),
            org_id,
            room_id: event.room_id(),
            payload,
            created_at: at,
        })
    }

    /// Binds the row's six values, in order.
    pub(super) fn bind<'q>(
        &'q self,
        query: sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments<'q>>,
    ) -> sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments<'q>> {
        query
            .bind(self.event_id.as_str())
            .bind(self.event_type)
            .bind(self.org_id)
            .bind(self.room_id)
            .bind(self.payload.as_str())
            .bind(self.created_at)
    }
}

/// A plain post's `message.created` event, written in the post's own statement: the message as
/// reading its row back will show it; only its id and organization are the database's to fill
/// in (each engine's plain post statement does). Tests compare the event with the API's answer.
pub(super) fn plain_post_event(msg: &NewMessage, now: DateTime<Utc>) -> StoreResult<EventRow> {
    let unsaved = Message::from(MessageRow::unsaved(msg, now));
    EventRow::new(0, &DomainEvent::MessageCreated(unsaved), now)
}

/// Records several events of organization `org_id`, each with the time it happened, as part of
/// `tx`: one statement per hundred events.
pub(super) async fn write_events(
    tx: &mut Tx<'_>,
    org_id: i64,
    events: &[(DomainEvent, DateTime<Utc>)],
) -> StoreResult<()> {
    let rows = events
        .iter()
        .map(|(event, at)| EventRow::new(org_id, event, *at))
        .collect::<StoreResult<Vec<_>>>()?;
    write_rows(tx, &rows).await
}

/// The insert of `rows` outbox rows, their values bound in order from `$1` (`EventRow::bind`).
pub(super) fn insert_rows_sql(rows: usize) -> String {
    let values: Vec<String> = (0..rows)
        .map(|i| format!("({})", placeholders(i * 6 + 1, 6)))
        .collect();
    format!("INSERT INTO {OUTBOX_COLUMNS} VALUES {}", values.join(", "))
}

/// Records outbox rows, in order, as part of `tx`: one statement per hundred rows.
pub(super) async fn write_rows(tx: &mut Tx<'_>, rows: &[EventRow]) -> StoreResult<()> {
    for chunk in rows.chunks(EVENTS_PER_STATEMENT) {
        let sql = insert_rows_sql(chunk.len());
        let mut query = sqlx::query(&sql);
        for row in chunk {
            query = row.bind(query);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

#[async_trait]
impl OutboxStore for SqlStore {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn outbox_after(&self, position: i64, limit: u32) -> StoreResult<Vec<OutboxEvent>> {
        let rows: Vec<OutboxRow> = sqlx::query_as(
            "SELECT id AS position, event_id, event_type, org_id, room_id, payload, created_at \
             FROM outbox WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(position)
        .bind(i64::from(limit))
        .fetch_all(&self.write)
        .await?;
        rows.into_iter().map(OutboxEvent::try_from).collect()
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn outbox_latest(&self, limit: u32) -> StoreResult<Vec<OutboxEvent>> {
        let rows: Vec<OutboxRow> = sqlx::query_as(
            "SELECT id AS position, event_id, event_type, org_id, room_id, payload, created_at \
             FROM outbox ORDER BY id DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        let mut events = rows
            .into_iter()
            .map(OutboxEvent::try_from)
            .collect::<StoreResult<Vec<_>>>()?;
        events.reverse();
        Ok(events)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn outbox_kinds_before(
        &self,
        position: i64,
        limit: u32,
    ) -> StoreResult<Vec<(i64, String, DateTime<Utc>)>> {
        Ok(sqlx::query_as(
            "SELECT id, event_type, created_at FROM outbox WHERE id < $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(position)
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn outbox_unpublished(&self, limit: u32) -> StoreResult<Vec<OutboxEvent>> {
        let rows: Vec<OutboxRow> = sqlx::query_as(
            "SELECT id AS position, event_id, event_type, org_id, room_id, payload, created_at \
             FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.write)
        .await?;
        rows.into_iter().map(OutboxEvent::try_from).collect()
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn mark_published(&self, positions: &[i64], now: DateTime<Utc>) -> StoreResult<()> {
        for chunk in positions.chunks(500) {
            let sql = format!(
                "UPDATE outbox SET published_at = $1 WHERE published_at IS NULL AND id IN ({})",
                placeholders(2, chunk.len())
            );
            let mut query = sqlx::query(&sql).bind(now);
            for position in chunk {
                query = query.bind(*position);
            }
            query.execute(&self.write).await?;
        }
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn prune_outbox(&self, before: DateTime<Utc>, batch: u32) -> StoreResult<u64> {
        // The events before the first one of `before` or later, `batch` at a time, oldest
        // first. A delivery still to be attempted keeps its event; one parked while its webhook
        // is off (by its admin, or after a 410) does not: it would keep the event, message text
        // and all, for as long as the webhook stays off. It goes with the event, as an attempt
        // past its last would have. Nor does one of a webhook that is off whose claim lapsed
        // unrecorded (a worker gone mid-attempt as it was switched off): it was never parked,
        // and no claim looks at it again. (No bound: an empty outbox.)
        let mut total = 0;
        if let Some(bound) = self.first_id_since("outbox", before).await? {
            total = self
                .delete_in_batches(
                    "DELETE FROM outbox WHERE id IN ( \
                       SELECT o.id FROM outbox o \
                       WHERE o.id < $1 AND o.published_at IS NOT NULL \
                         AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d \
                                         JOIN webhooks w ON w.id = d.webhook_id \
                                         WHERE d.outbox_id = o.id AND d.status IN ('pending', 'retrying') \
                                           AND d.next_attempt_at IS NOT NULL AND w.is_active) \
                       ORDER BY o.id LIMIT $2)",
                    bound,
                    batch,
                )
                .await?;
        }
        // Which events were noted for digests is kept for as long as one could be handed over
        // again.
        self.delete_in_batches(
            "DELETE FROM digest_events WHERE event_id IN ( \
               SELECT event_id FROM digest_events WHERE noted_at < $1 LIMIT $2)",
            before,
            batch,
        )
        .await?;
        Ok(total)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn outbox_backlog(&self) -> StoreResult<(i64, Option<DateTime<Utc>>)> {
        let (count,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM outbox WHERE published_at IS NULL")
                .fetch_one(&self.read)
                .await?;
        let oldest: Option<(DateTime<Utc>,)> = sqlx::query_as(
            "SELECT created_at FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT 1",
        )
        .fetch_optional(&self.read)
        .await?;
        Ok((count, oldest.map(|(t,)| t)))
    }
}
