//! Rooms, room members and read state.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::orgs::{ensure_room_quota, lock_org, lock_writable_org};
use super::outbox::{write_event, write_events};
use super::{SqlStore, Tx, ROOM_DELETE_LOCK};
use crate::sql::rows::{
    dm_key, is_unique_violation, parse_access_level, placeholders, RoomAccessRow, RoomMemberRow,
    RoomRow, UnreadRow, ROOM_COLUMNS,
};
use crate::{
    JoinVia, NewRoom, ReadMark, RoomAccess, RoomPatch, RoomPosition, RoomStore, SeatStart,
    StoreError, StoreResult,
};
use chatboard_core::error_code::ErrorCode;
use chatboard_core::events::{DomainEvent, LeftVia};
use chatboard_core::model::SMALL_ROOM_MEMBERS;
use chatboard_core::model::{AccessLevel, Role, Room, RoomMember, UnreadCount};

impl SqlStore {
    /// The room object, read inside `tx` (so it sees the transaction's own changes).
    async fn room_in(tx: &mut Tx<'_>, room_id: i64) -> StoreResult<Room> {
        let sql = format!("SELECT {ROOM_COLUMNS} FROM rooms r WHERE r.id = $1");
        let row: RoomRow = sqlx::query_as(&sql)
            .bind(room_id)
            .fetch_one(&mut **tx)
            .await?;
        Room::try_from(row)
    }

    /// The ids of a room's members, by id.
    async fn member_ids_in(tx: &mut Tx<'_>, room_id: i64) -> StoreResult<Vec<i64>> {
        let rows: Vec<(i64,)> =
            sqlx::query_as("SELECT user_id FROM room_members WHERE room_id = $1 ORDER BY user_id")
                .bind(room_id)
                .fetch_all(&mut **tx)
                .await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    /// Seats every member of `org_id` whose role the access level admits, plus `creator`.
    async fn seat_initial_members(
        tx: &mut Tx<'_>,
        room_id: i64,
        org_id: i64,
        level: AccessLevel,
        creator: i64,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let admitted: &[Role] = match level {
            AccessLevel::Public => &[Role::Member, Role::Manager, Role::Admin],
            AccessLevel::ManagerOnly => &[Role::Manager, Role::Admin],
            AccessLevel::Private => &[],
        };
        for role in admitted {
            sqlx::query(
                "INSERT INTO room_members (room_id, user_id, joined_at) \
                 SELECT $1, user_id, $2 FROM org_members WHERE org_id = $3 AND role = $4 \
                 ON CONFLICT DO NOTHING",
            )
            .bind(room_id)
            .bind(now)
            .bind(org_id)
            .bind(role.as_str())
            .execute(&mut **tx)
            .await?;
        }
        sqlx::query(
            "INSERT INTO room_members (room_id, user_id, joined_at) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(room_id)
        .bind(creator)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Seats a new org member in the org's PUBLIC rooms; returns those rooms.
    pub(super) async fn join_public_rooms(
        tx: &mut Tx<'_>,
        org_id: i64,
        user_id: i64,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<i64>> {
        let rows: Vec<(i64,)> = sqlx::query_as(
            "INSERT INTO room_members (room_id, user_id, joined_at) \
             SELECT id, $2, $3 FROM rooms WHERE org_id = $1 AND access_level = $4 AND NOT is_dm \
             ON CONFLICT DO NOTHING RETURNING room_id",
        )
        .bind(org_id)
        .bind(user_id)
        .bind(now)
        .bind(AccessLevel::Public.as_str())
        .fetch_all(&mut **tx)
        .await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    /// Takes a user out of the org's rooms: all of them (`only_level` None), or those of one
    /// access level. Returns the rooms left.
    pub(super) async fn leave_org_rooms(
        tx: &mut Tx<'_>,
        org_id: i64,
        user_id: i64,
        only_level: Option<AccessLevel>,
    ) -> StoreResult<Vec<i64>> {
        let rows: Vec<(i64,)> = sqlx::query_as(
            "DELETE FROM room_members WHERE user_id = $2 AND room_id IN \
             (SELECT id FROM rooms WHERE org_id = $1 AND ($3 IS NULL OR (access_level = $3 AND NOT is_dm))) \
             RETURNING room_id",
        )
        .bind(org_id)
        .bind(user_id)
        .bind(only_level.map(AccessLevel::as_str))
        .fetch_all(&mut **tx)
        .await?;
        let mut rooms: Vec<i64> = rows.into_iter().map(|(id,)| id).collect();
        rooms.sort_unstable();
        Ok(rooms)
    }

    /// Takes a user out of the org's MANAGER_ONLY rooms, which their new role no longer admits
    /// them to, with one `member.left` per room; returns the rooms left.
    pub(super) async fn leave_manager_rooms(
        tx: &mut Tx<'_>,
        org_id: i64,
        user_id: i64,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<i64>> {
        let left =
            Self::leave_org_rooms(tx, org_id, user_id, Some(AccessLevel::ManagerOnly)).await?;
        let events: Vec<_> = left
            .iter()
            .map(|&room| {
                let event = DomainEvent::left(
                    org_id,
                    Some(room),
                    user_id,
                    vec![room],
                    LeftVia::RoleChanged,
                );
                (event, now)
            })
            .collect();
        if !events.is_empty() {
            write_events(tx, org_id, &events).await?;
        }
        Ok(left)
    }

    /// Deletes an organization with everything in it; returns the ids of its rooms (for the
    /// `room.deleted` announcements). Not its seats: an organization of 100,000 members in 300
    /// public rooms has 30 million, all read into memory inside the deletion.
    pub(super) async fn erase_org(tx: &mut Tx<'_>, org_id: i64) -> StoreResult<Vec<i64>> {
        // The org's row, then its rooms', in the order every path takes them: a join or an
        // invitation holds the org, then needs its room; a room created meanwhile waits.
        lock_org(tx, org_id).await?;
        let rooms: Vec<i64> = sqlx::query_scalar(&format!(
            "SELECT id FROM rooms WHERE org_id = $1 ORDER BY id{ROOM_DELETE_LOCK}"
        ))
        .bind(org_id)
        .fetch_all(&mut **tx)
        .await?;
        // Rooms, memberships, webhooks and invitations cascade; messages carry no foreign key
        // and go afterwards, a batch per transaction (see `erased_rooms`).
        sqlx::query(
            "INSERT INTO erased_rooms (room_id, erased_at) \
             SELECT id, $2 FROM rooms WHERE org_id = $1",
        )
        .bind(org_id)
        .bind(Utc::now())
        .execute(&mut **tx)
        .await?;
        sqlx::query("DELETE FROM orgs WHERE id = $1")
            .bind(org_id)
            .execute(&mut **tx)
            .await?;
        Ok(rooms)
    }

    async fn existing_dm(&self, org_id: i64, key: &str) -> StoreResult<Option<Room>> {
        let sql =
            format!("SELECT {ROOM_COLUMNS} FROM rooms r WHERE r.org_id = $1 AND r.dm_key = $2");
        let row: Option<RoomRow> = sqlx::query_as(&sql)
            .bind(org_id)
            .bind(key)
            .fetch_optional(&self.write)
            .await?;
        row.map(Room::try_from).transpose()
    }

    async fn insert_dm(
        &self,
        org_id: i64,
        user_id: i64,
        other_id: i64,
        name: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Room> {
        let mut tx = self.write.begin().await?;
        ensure_room_quota(&mut tx, org_id).await?;
        // Both are still in the organization (checked on a read before; the org's lock, taken
        // above, holds removals off until the seats are in).
        for member in [user_id, other_id] {
            Self::role_in(&mut tx, org_id, member)
                .await?
                .ok_or(StoreError::NotFound)?;
        }
        let (room_id,): (i64,) = sqlx::query_as(
            "INSERT INTO rooms (org_id, name, is_dm, access_level, dm_key, created_by, created_at) \
             VALUES ($1, $2, TRUE, $3, $4, $5, $6) RETURNING id",
        )
        .bind(org_id)
        .bind(name)
        .bind(AccessLevel::Private.as_str())
        .bind(dm_key(user_id, other_id))
        .bind(user_id)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        for member in [user_id, other_id] {
            sqlx::query(
                "INSERT INTO room_members (room_id, user_id, joined_at) VALUES ($1, $2, $3)",
            )
            .bind(room_id)
            .bind(member)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        let room = Self::room_in(&mut tx, room_id).await?;
        let event = DomainEvent::room_created(
            room.clone(),
            vec![user_id.min(other_id), user_id.max(other_id)],
        );
        write_event(&mut tx, org_id, &event, now).await?;
        tx.commit().await?;
        Ok(room)
    }
}

#[async_trait]
impl RoomStore for SqlStore {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn create_room(&self, new: NewRoom, now: DateTime<Utc>) -> StoreResult<Room> {
        let mut tx = self.write.begin().await?;
        ensure_room_quota(&mut tx, new.org_id).await?;
        // The caller checked the creator's role on a read; under the org's lock (which removals
        // and role changes take) it holds until the room and its seats are in. A creator
        // removed or demoted meanwhile would otherwise get a seat their role does not allow.
        let role = Self::role_in(&mut tx, new.org_id, new.created_by)
            .await?
            .ok_or(StoreError::NotFound)?;
        if role < Role::Manager {
            return Err(StoreError::Forbidden(ErrorCode::PermissionDenied));
        }
        let (room_id,): (i64,) = sqlx::query_as(
            "INSERT INTO rooms (org_id, name, is_dm, access_level, created_by, created_at) \
             VALUES ($1, $2, FALSE, $3, $4, $5) RETURNING id",
        )
        .bind(new.org_id)
        .bind(&new.name)
        .bind(new.access_level.as_str())
        .bind(new.created_by)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        Self::seat_initial_members(
            &mut tx,
            room_id,
            new.org_id,
            new.access_level,
            new.created_by,
            now,
        )
        .await?;
        let room = Self::room_in(&mut tx, room_id).await?;
        let members = Self::member_ids_in(&mut tx, room_id).await?;
        write_event(
            &mut tx,
            room.org,
            &DomainEvent::room_created(room.clone(), members),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(room)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn open_dm(
        &self,
        org_id: i64,
        user_id: i64,
        other_id: i64,
        name: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<(Room, bool)> {
        let key = dm_key(user_id, other_id);
        if let Some(room) = self.existing_dm(org_id, &key).await? {
            return Ok((room, false));
        }
        match self.insert_dm(org_id, user_id, other_id, name, now).await {
            Ok(room) => Ok((room, true)),
            // Both users opened it at the same moment: the other request created it.
            Err(StoreError::Database(e)) if is_unique_violation(&e) => {
                let room = self
                    .existing_dm(org_id, &key)
                    .await?
                    .ok_or(StoreError::NotFound)?;
                Ok((room, false))
            }
            Err(e) => Err(e),
        }
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn rooms_for_user(&self, user_id: i64, org_id: Option<i64>) -> StoreResult<Vec<Room>> {
        let sql = format!(
            "SELECT {ROOM_COLUMNS} FROM room_members rm JOIN rooms r ON r.id = rm.room_id \
             WHERE rm.user_id = $1 AND ($2 IS NULL OR r.org_id = $2) ORDER BY r.id"
        );
        let rows: Vec<RoomRow> = sqlx::query_as(&sql)
            .bind(user_id)
            .bind(org_id)
            .fetch_all(&self.read)
            .await?;
        rows.into_iter().map(Room::try_from).collect()
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn room_access(&self, room_id: i64, user_id: i64) -> StoreResult<Option<RoomAccess>> {
        let sql = format!(
            "SELECT {ROOM_COLUMNS}, om.role AS org_role, \
               EXISTS (SELECT 1 FROM room_members x WHERE x.room_id = r.id AND x.user_id = $2) AS is_member, \
               o.suspended AS org_suspended, (o.archived_at IS NOT NULL) AS org_archived \
             FROM rooms r JOIN org_members om ON om.org_id = r.org_id AND om.user_id = $2 \
               JOIN orgs o ON o.id = r.org_id \
             WHERE r.id = $1"
        );
        let row: Option<RoomAccessRow> = sqlx::query_as(&sql)
            .bind(room_id)
            .bind(user_id)
            .fetch_optional(&self.read)
            .await?;
        row.map(RoomAccess::try_from).transpose()
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn update_room(&self, room_id: i64, actor: i64, patch: RoomPatch) -> StoreResult<Room> {
        let mut tx = self.write.begin().await?;
        let found: Option<(i64, bool)> =
            sqlx::query_as("SELECT org_id, is_dm FROM rooms WHERE id = $1")
                .bind(room_id)
                .fetch_optional(&mut *tx)
                .await?;
        let org_id = match found {
            None => return Err(StoreError::NotFound),
            Some((_, true)) => return Err(StoreError::Conflict(ErrorCode::DmImmutable)),
            Some((org_id, false)) => org_id,
        };
        // The org's lock before the room's row, as seats take them; under it the caller's
        // checks hold: the organization writable, the actor still managing the room.
        lock_writable_org(&mut tx, org_id).await?;
        ensure_manages(&mut tx, org_id, room_id, actor).await?;
        if let Some(name) = &patch.name {
            sqlx::query("UPDATE rooms SET name = $2 WHERE id = $1")
                .bind(room_id)
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(level) = patch.access_level {
            sqlx::query("UPDATE rooms SET access_level = $2 WHERE id = $1")
                .bind(room_id)
                .bind(level.as_str())
                .execute(&mut *tx)
                .await?;
        }
        let room = Self::room_in(&mut tx, room_id).await?;
        tx.commit().await?;
        Ok(room)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn delete_room(&self, room_id: i64, actor: i64) -> StoreResult<()> {
        let mut tx = self.write.begin().await?;
        let org: Option<(i64,)> = sqlx::query_as("SELECT org_id FROM rooms WHERE id = $1")
            .bind(room_id)
            .fetch_optional(&mut *tx)
            .await?;
        let (org_id,) = org.ok_or(StoreError::NotFound)?;
        // The org's lock before the room's, as every change of seats takes them: the deletion
        // removes the room's seats, and the operator revoking two admins holds the org and the
        // first one's seats while it waits for the next; taking the room first deadlocked.
        // Under it, an org suspended or archived since the caller's read refuses the deletion,
        // and so does an actor who no longer manages the room.
        lock_writable_org(&mut tx, org_id).await?;
        ensure_manages(&mut tx, org_id, room_id, actor).await?;
        let sql = format!("SELECT id FROM rooms WHERE id = $1{ROOM_DELETE_LOCK}");
        if sqlx::query(&sql)
            .bind(room_id)
            .fetch_optional(&mut *tx)
            .await?
            .is_none()
        {
            return Err(StoreError::NotFound);
        }
        // Messages carry no foreign key (see the migration): they go afterwards, a batch per
        // transaction (see `erased_rooms`).
        sqlx::query("INSERT INTO erased_rooms (room_id, erased_at) VALUES ($1, $2)")
            .bind(room_id)
            .bind(Utc::now())
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM rooms WHERE id = $1")
            .bind(room_id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn add_room_member(
        &self,
        room_id: i64,
        user_id: i64,
        via: JoinVia,
        by: Option<i64>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut tx = self.write.begin().await?;
        let org: Option<(i64,)> = sqlx::query_as("SELECT org_id FROM rooms WHERE id = $1")
            .bind(room_id)
            .fetch_optional(&mut *tx)
            .await?;
        let (org_id,) = org.ok_or(StoreError::NotFound)?;
        // The caller checked the seat against the user's role on a read; under the org's lock
        // (which removals and role changes take) the check holds until the seat is in: a
        // removal or demotion committed meanwhile refuses it instead of leaving a seat behind.
        lock_writable_org(&mut tx, org_id).await?;
        if let Some(by) = by {
            ensure_manages(&mut tx, org_id, room_id, by).await?;
        }
        let role = Self::role_in(&mut tx, org_id, user_id)
            .await?
            .ok_or(StoreError::NotFound)?;
        // The room's level, read under the org's lock, which a change of level takes first:
        // one made PRIVATE meanwhile takes no one who joins by themselves.
        let (level, is_dm): (String, bool) =
            sqlx::query_as("SELECT access_level, is_dm FROM rooms WHERE id = $1")
                .bind(room_id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound)?;
        let level = parse_access_level(&level)?;
        if via == JoinVia::Join && is_dm {
            return Err(StoreError::Forbidden(ErrorCode::DmNotJoinable));
        }
        if via == JoinVia::Join && level == AccessLevel::Private {
            return Err(StoreError::Forbidden(ErrorCode::InviteOnly));
        }
        // (PRIVATE rooms take invited members of any role.)
        if level == AccessLevel::ManagerOnly && !level.admits(role) {
            return Err(StoreError::Forbidden(ErrorCode::PermissionDenied));
        }
        let added = sqlx::query(
            "INSERT INTO room_members (room_id, user_id, joined_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(room_id)
        .bind(user_id)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        if added {
            write_event(
                &mut tx,
                org_id,
                &DomainEvent::joined(org_id, Some(room_id), user_id, via.as_str()),
                now,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(added)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn remove_room_member(&self, room_id: i64, user_id: i64) -> StoreResult<bool> {
        let mut tx = self.write.begin().await?;
        let org: Option<(i64,)> = sqlx::query_as("SELECT org_id FROM rooms WHERE id = $1")
            .bind(room_id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some((org_id,)) = org else {
            return Ok(false);
        };
        // Under the org's lock, as every other change of seats: a transaction that changes
        // seats in several statements (the operator revoking two admins) holds the first ones'
        // seat counts while it waits for the next seats, so a leave that held its seat while
        // waiting for its room's count would deadlock with it.
        lock_org(&mut tx, org_id).await?;
        let removed = sqlx::query("DELETE FROM room_members WHERE room_id = $1 AND user_id = $2")
            .bind(room_id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0;
        if removed {
            let event =
                DomainEvent::left(org_id, Some(room_id), user_id, vec![room_id], LeftVia::Left);
            write_event(&mut tx, org_id, &event, Utc::now()).await?;
        }
        tx.commit().await?;
        Ok(removed)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn room_members(&self, room_id: i64) -> StoreResult<Vec<RoomMember>> {
        let rows: Vec<RoomMemberRow> = sqlx::query_as(
            "SELECT rm.user_id, u.email, u.first_name, u.last_name, om.role AS org_role, \
                    rm.last_read_msg_id, rm.joined_at \
             FROM room_members rm \
             JOIN users u ON u.id = rm.user_id \
             JOIN rooms r ON r.id = rm.room_id \
             LEFT JOIN org_members om ON om.org_id = r.org_id AND om.user_id = rm.user_id \
             WHERE rm.room_id = $1 ORDER BY rm.joined_at, rm.user_id",
        )
        .bind(room_id)
        .fetch_all(&self.read)
        .await?;
        rows.into_iter().map(RoomMember::try_from).collect()
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn room_positions(&self, user_id: i64) -> StoreResult<Vec<RoomPosition>> {
        let rows: Vec<(i64, Option<i64>, i64)> = sqlx::query_as(
            "SELECT r.id, r.last_msg_id, r.last_seq FROM room_members rm \
             JOIN rooms r ON r.id = rm.room_id WHERE rm.user_id = $1 ORDER BY r.id",
        )
        .bind(user_id)
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(room_id, last_msg_id, last_seq)| RoomPosition {
                room_id,
                last_msg_id,
                last_seq,
            })
            .collect())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn seat_start(&self, room_id: i64, user_id: i64) -> StoreResult<Option<SeatStart>> {
        let row: Option<(i64, i64, i64)> = sqlx::query_as(
            "SELECT COALESCE(rm.seated_after_msg_id, r.last_msg_id, 0), \
                    COALESCE(rm.seated_after_seq, r.last_seq), COALESCE(c.seats, 0) \
             FROM room_members rm JOIN rooms r ON r.id = rm.room_id \
             LEFT JOIN room_seat_counts c ON c.room_id = r.id \
             WHERE rm.room_id = $1 AND rm.user_id = $2",
        )
        .bind(room_id)
        .bind(user_id)
        .fetch_optional(&self.read)
        .await?;
        Ok(row.map(|(last_msg_id, last_seq, room_members)| SeatStart {
            position: RoomPosition {
                room_id,
                last_msg_id: (last_msg_id > 0).then_some(last_msg_id),
                last_seq,
            },
            room_members,
        }))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn room_sizes(&self, room_ids: &[i64]) -> StoreResult<Vec<(i64, i64)>> {
        let mut sizes = Vec::new();
        for chunk in room_ids.chunks(500) {
            let sql = format!(
                "SELECT room_id, seats FROM room_seat_counts WHERE room_id IN ({})",
                placeholders(1, chunk.len())
            );
            let mut query = sqlx::query_as::<_, (i64, i64)>(&sql);
            for id in chunk {
                query = query.bind(*id);
            }
            sizes.extend(query.fetch_all(&self.read).await?);
        }
        Ok(sizes)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn seats_of(&self, user_ids: &[i64]) -> StoreResult<Vec<(i64, i64)>> {
        let mut seats = Vec::new();
        // Bounded statements: engines cap the number of parameters.
        for chunk in user_ids.chunks(500) {
            let sql = format!(
                "SELECT m.user_id, m.room_id FROM room_members m \
                 JOIN room_seat_counts c ON c.room_id = m.room_id \
                 WHERE m.user_id IN ({}) AND c.seats <= {SMALL_ROOM_MEMBERS}",
                placeholders(1, chunk.len())
            );
            let mut query = sqlx::query_as::<_, (i64, i64)>(&sql);
            for id in chunk {
                query = query.bind(*id);
            }
            seats.extend(query.fetch_all(&self.read).await?);
        }
        Ok(seats)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn room_mates(&self, user_id: i64, room: Option<i64>) -> StoreResult<Vec<i64>> {
        let rows: Vec<(i64,)> = sqlx::query_as(
            "SELECT DISTINCT other.user_id FROM room_members mine \
             JOIN room_seat_counts c ON c.room_id = mine.room_id AND c.seats <= $3 \
             JOIN room_members other ON other.room_id = mine.room_id AND other.user_id <> mine.user_id \
             WHERE mine.user_id = $1 AND ($2 IS NULL OR mine.room_id = $2)",
        )
        .bind(user_id)
        .bind(room)
        .bind(SMALL_ROOM_MEMBERS)
        .fetch_all(&self.read)
        .await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn mark_read(&self, room_id: i64, user_id: i64, msg_id: i64) -> StoreResult<ReadMark> {
        // A pointer moving forward, the common case, in one statement: the message's seq is
        // read in it and the room's size comes back with the new pointer. Only forwards: a late
        // or repeated receipt for an older message changes nothing.
        let moved: Option<(i64, i64)> = sqlx::query_as(
            "UPDATE room_members SET last_read_msg_id = $3, \
               last_read_seq = (SELECT seq FROM messages WHERE room_id = $1 AND id = $3) \
             WHERE room_id = $1 AND user_id = $2 \
               AND (last_read_msg_id IS NULL OR last_read_msg_id < $3) \
               AND EXISTS (SELECT 1 FROM messages WHERE room_id = $1 AND id = $3) \
             RETURNING last_read_msg_id, \
               COALESCE((SELECT seats FROM room_seat_counts WHERE room_id = $1), 0)",
        )
        .bind(room_id)
        .bind(user_id)
        .bind(msg_id)
        .fetch_optional(&self.write)
        .await?;
        if let Some((last_read_msg_id, room_members)) = moved {
            return Ok(ReadMark {
                last_read_msg_id,
                moved: true,
                room_members,
            });
        }
        // Nothing moved: the pointer was there already, or there is no such seat or message.
        let now_at: Option<(Option<i64>, i64, bool)> = sqlx::query_as(
            "SELECT m.last_read_msg_id, COALESCE(c.seats, 0), \
               EXISTS (SELECT 1 FROM messages WHERE room_id = $1 AND id = $3) \
             FROM room_members m LEFT JOIN room_seat_counts c ON c.room_id = m.room_id \
             WHERE m.room_id = $1 AND m.user_id = $2",
        )
        .bind(room_id)
        .bind(user_id)
        .bind(msg_id)
        .fetch_optional(&self.write)
        .await?;
        match now_at {
            Some((Some(last_read_msg_id), room_members, true)) => Ok(ReadMark {
                last_read_msg_id,
                moved: false,
                room_members,
            }),
            _ => Err(StoreError::NotFound),
        }
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn unread_counts(&self, user_id: i64) -> StoreResult<Vec<UnreadCount>> {
        // One statement for any number of rooms. The room's message count and newest id come
        // from its row (`last_seq`, `last_msg_id`), so the cost per room is two index probes
        // that usually find nothing: the reader's own messages after their pointer and deleted
        // ones after it. The unread messages themselves are never scanned. Nothing up to the
        // room's `purged_seq` (the highest seq retention purged) counts, mentions included:
        // what went is not unread, and a thread's first message kept with its younger replies
        // is old news. Unread mentions are counted for all rooms at once (the planner reads the
        // reader's mentions once when they are few, instead of probing 500 rooms: that probe
        // cost the query 13%).
        let rows: Vec<UnreadRow> = sqlx::query_as(
            "SELECT r.id AS room_id, r.name AS room_name, rm.last_read_msg_id, \
               r.last_msg_id, \
               r.last_seq \
                 - CASE WHEN rm.last_read_seq > r.purged_seq THEN rm.last_read_seq ELSE r.purged_seq END \
                 - (SELECT COUNT(*) FROM messages o WHERE o.room_id = r.id AND o.sender_id = $1 \
                      AND o.id > COALESCE(rm.last_read_msg_id, 0) AND o.seq > r.purged_seq) \
                 - (SELECT COUNT(*) FROM messages d WHERE d.room_id = r.id AND d.is_deleted \
                      AND d.id > COALESCE(rm.last_read_msg_id, 0) AND d.seq > r.purged_seq \
                      AND (d.sender_id IS NULL OR d.sender_id <> $1)) AS unread_count, \
               COALESCE(mc.unread, 0) AS mentions \
             FROM room_members rm JOIN rooms r ON r.id = rm.room_id \
             LEFT JOIN ( \
               SELECT mn.room_id, COUNT(*) AS unread FROM mentions mn \
               JOIN room_members seat ON seat.room_id = mn.room_id AND seat.user_id = mn.user_id \
               JOIN rooms pr ON pr.id = mn.room_id \
               JOIN messages mm ON mm.room_id = mn.room_id AND mm.id = mn.message_id \
               WHERE mn.user_id = $1 AND mn.message_id > COALESCE(seat.last_read_msg_id, 0) \
                 AND mm.seq > pr.purged_seq \
               GROUP BY mn.room_id) mc ON mc.room_id = r.id \
             WHERE rm.user_id = $1 ORDER BY r.id",
        )
        .bind(user_id)
        .fetch_all(&self.read)
        .await?;
        Ok(rows.into_iter().map(UnreadCount::from).collect())
    }
}

/// `Forbidden(permission_denied)` unless `actor` manages the room: an ADMIN of its
/// organization, or the creator of a room that is not a direct message, seated in it. Read
/// under the organization's lock, which demotions, removals and seat changes take.
async fn ensure_manages(tx: &mut Tx<'_>, org_id: i64, room_id: i64, actor: i64) -> StoreResult<()> {
    let (manages,): (bool,) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM org_members \
             WHERE org_id = $1 AND user_id = $3 AND role = 'ADMIN') \
           OR EXISTS (SELECT 1 FROM rooms r JOIN room_members rm \
             ON rm.room_id = r.id AND rm.user_id = $3 \
             WHERE r.id = $2 AND r.created_by = $3 AND NOT r.is_dm)",
    )
    .bind(org_id)
    .bind(room_id)
    .bind(actor)
    .fetch_one(&mut **tx)
    .await?;
    if manages {
        Ok(())
    } else {
        Err(StoreError::Forbidden(ErrorCode::PermissionDenied))
    }
}
