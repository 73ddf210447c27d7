// The event outbox: rows written inside the transaction of the change they describe.

/// Records `event` in the outbox as part of `tx`, with a fresh event id.
async fn write_event(tx: &mut Tx<'_>, event: &NewEvent, now: DateTime<Utc>) -> StoreResult<()> {
    let payload = serde_json::to_string(&event.data)
        .map_err(|e| StoreError::Database(sqlx::Error::Encode(e.into())))?;
    sqlx::query(
        "INSERT INTO outbox (event_id, event_type, org_id, room_id, payload, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(event.event_type.as_str())
    .bind(event.org_id)
    .bind(event.room_id)
    .bind(payload)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[async_trait]
impl OutboxStore for SqlStore {
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
}
