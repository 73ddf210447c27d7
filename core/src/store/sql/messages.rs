// Messages: posting with its event, cursor pages, edits and soft deletes.

impl SqlStore {
    async fn message_in(tx: &mut Tx<'_>, room_id: i64, msg_id: i64) -> StoreResult<Option<Message>> {
        let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE room_id = $1 AND id = $2");
        let row: Option<MessageRow> = sqlx::query_as(&sql).bind(room_id).bind(msg_id).fetch_optional(&mut **tx).await?;
        Ok(row.map(Message::from))
    }
}

#[async_trait]
impl MessageStore for SqlStore {
    async fn post_message(&self, msg: NewMessage, now: DateTime<Utc>) -> StoreResult<(Message, bool)> {
        let mut tx = self.write.begin().await?;
        // Taking the room's next seq locks its row until commit, so messages of one room commit
        // one at a time and in id order: a reader that has seen id N will never later find a
        // committed message below N. The same statement checks membership.
        let slot: Option<(i64, i64)> = sqlx::query_as(
            "UPDATE rooms SET last_seq = last_seq + 1 \
             WHERE id = $1 AND EXISTS (SELECT 1 FROM room_members WHERE room_id = $1 AND user_id = $2) \
             RETURNING org_id, last_seq",
        )
        .bind(msg.room_id)
        .bind(msg.sender_id)
        .fetch_optional(&mut *tx)
        .await?;
        let (org_id, seq) = slot.ok_or(StoreError::NotFound)?;
        if let Some(client_id) = &msg.client_msg_id {
            // Under the room lock, so two racing retries cannot both insert.
            let sql = format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages WHERE room_id = $1 AND sender_id = $2 AND client_msg_id = $3"
            );
            let earlier: Option<MessageRow> = sqlx::query_as(&sql)
                .bind(msg.room_id)
                .bind(msg.sender_id)
                .bind(client_id)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(earlier) = earlier {
                tx.rollback().await?;
                return Ok((Message::from(earlier), false));
            }
        }
        let sql = format!(
            "INSERT INTO messages (room_id, org_id, seq, sender_id, body, client_msg_id, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {MESSAGE_COLUMNS}"
        );
        let row: MessageRow = sqlx::query_as(&sql)
            .bind(msg.room_id)
            .bind(org_id)
            .bind(seq)
            .bind(msg.sender_id)
            .bind(&msg.body)
            .bind(&msg.client_msg_id)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
        let message = Message::from(row);
        write_event(&mut tx, &NewEvent::message(EventType::MessageCreated, &message), now).await?;
        tx.commit().await?;
        Ok((message, true))
    }

    async fn list_messages(&self, room_id: i64, cursor: PageCursor, limit: u32) -> StoreResult<Vec<Message>> {
        let (condition, order, bound) = match cursor {
            PageCursor::Newest => ("", "DESC", None),
            PageCursor::Before(id) => ("AND id < $3", "DESC", Some(id)),
            PageCursor::After(id) => ("AND id > $3", "ASC", Some(id)),
        };
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE room_id = $1 {condition} ORDER BY id {order} LIMIT $2"
        );
        let mut query = sqlx::query_as::<_, MessageRow>(&sql).bind(room_id).bind(i64::from(limit));
        if let Some(id) = bound {
            query = query.bind(id);
        }
        let rows = query.fetch_all(&self.read).await?;
        Ok(rows.into_iter().map(Message::from).collect())
    }

    async fn message(&self, room_id: i64, msg_id: i64) -> StoreResult<Option<Message>> {
        let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE room_id = $1 AND id = $2");
        let row: Option<MessageRow> = sqlx::query_as(&sql).bind(room_id).bind(msg_id).fetch_optional(&self.read).await?;
        Ok(row.map(Message::from))
    }

    async fn edit_message(&self, room_id: i64, msg_id: i64, body: &str, now: DateTime<Utc>) -> StoreResult<Message> {
        let mut tx = self.write.begin().await?;
        // The NOT is_deleted guard makes edit-after-delete impossible even when the two race.
        let sql = format!(
            "UPDATE messages SET body = $3, edited_at = $4 \
             WHERE room_id = $1 AND id = $2 AND NOT is_deleted RETURNING {MESSAGE_COLUMNS}"
        );
        let row: Option<MessageRow> =
            sqlx::query_as(&sql).bind(room_id).bind(msg_id).bind(body).bind(now).fetch_optional(&mut *tx).await?;
        let Some(row) = row else {
            return match Self::message_in(&mut tx, room_id, msg_id).await? {
                Some(_) => Err(StoreError::Conflict("message_deleted")),
                None => Err(StoreError::NotFound),
            };
        };
        let message = Message::from(row);
        write_event(&mut tx, &NewEvent::message(EventType::MessageUpdated, &message), now).await?;
        tx.commit().await?;
        Ok(message)
    }

    async fn delete_message(&self, room_id: i64, msg_id: i64, now: DateTime<Utc>) -> StoreResult<Message> {
        let mut tx = self.write.begin().await?;
        let sql = format!(
            "UPDATE messages SET body = '', is_deleted = TRUE \
             WHERE room_id = $1 AND id = $2 AND NOT is_deleted RETURNING {MESSAGE_COLUMNS}"
        );
        let row: Option<MessageRow> = sqlx::query_as(&sql).bind(room_id).bind(msg_id).fetch_optional(&mut *tx).await?;
        let Some(row) = row else {
            // Already deleted (the same outcome, and no second event) or not there at all.
            return Self::message_in(&mut tx, room_id, msg_id).await?.ok_or(StoreError::NotFound);
        };
        let message = Message::from(row);
        write_event(&mut tx, &NewEvent::message(EventType::MessageDeleted, &message), now).await?;
        tx.commit().await?;
        Ok(message)
    }
}
