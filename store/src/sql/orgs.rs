//! Organizations, members and invitations.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::invites::{insert_invite, open_invite, revoke_invite, revoke_invites_beyond};
use super::outbox::write_event;
use super::webhooks::switch_off_webhooks_of;
use super::{Db, SqlStore, Tx, ORG_LOCK};
use crate::sql::rows::{
    is_unique_violation, new_slug, parse_role, read_only_code, InviteRow, OrgMemberRow, OrgViewRow,
    ORG_VIEW_SELECT,
};
use crate::{Departure, JoinedOrg, NewInvite, OrgStore, StoreError, StoreResult};
use chatboard_core::error_code::ErrorCode;
use chatboard_core::events::{DomainEvent, LeftVia};
use chatboard_core::model::{AccessLevel, Invite, OrgMember, OrgView, Role};

/// Whether the organization exists, locking its row where the engine needs a lock to keep
/// membership changes (last-admin checks) of one org from running side by side.
pub(super) async fn lock_org(tx: &mut Tx<'_>, org_id: i64) -> Result<bool, sqlx::Error> {
    let sql = format!("SELECT id FROM orgs WHERE id = $1{ORG_LOCK}");
    let found = sqlx::query(&sql)
        .bind(org_id)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(found.is_some())
}

/// Inserts an organization with a new slug ([`new_slug`]); managed when a resource owns
/// it. A slug already taken (a one-in-a-billion draw) fails the unique index: callers retry.
pub(super) async fn insert_org_row(
    tx: &mut Tx<'_>,
    name: &str,
    creator: Option<i64>,
    resource_key: Option<&str>,
    now: DateTime<Utc>,
) -> Result<i64, sqlx::Error> {
    let slug = new_slug(name);
    let (org_id,): (i64,) = sqlx::query_as(
        "INSERT INTO orgs (name, slug, managed, created_by, resource_key, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(name)
    .bind(&slug)
    .bind(resource_key.is_some())
    .bind(creator)
    .bind(resource_key)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    Ok(org_id)
}

/// Changes a member's role from `from` to `to` and records it (`member.role_changed`).
pub(super) async fn change_role(
    tx: &mut Tx<'_>,
    org_id: i64,
    user_id: i64,
    (from, to): (Role, Role),
    now: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query("UPDATE org_members SET role = $3 WHERE org_id = $1 AND user_id = $2")
        .bind(org_id)
        .bind(user_id)
        .bind(to.as_str())
        .execute(&mut **tx)
        .await?;
    let event = DomainEvent::role_changed(org_id, user_id, from, to);
    write_event(tx, org_id, &event, now).await
}

pub(super) async fn member_count<'e, E: sqlx::Executor<'e, Database = Db>>(
    db: E,
    org_id: i64,
) -> StoreResult<i64> {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM org_members WHERE org_id = $1")
        .bind(org_id)
        .fetch_one(db)
        .await?;
    Ok(n)
}

/// An organization's limits, read under its lock.
pub(super) struct OrgGate {
    max_members: Option<i32>,
    max_rooms: Option<i32>,
}

/// Locks an organization that is to change: `NotFound` if it does not exist, `Forbidden` when it
/// is suspended or archived.
pub(super) async fn lock_writable_org(tx: &mut Tx<'_>, org_id: i64) -> StoreResult<OrgGate> {
    if !lock_org(tx, org_id).await? {
        return Err(StoreError::NotFound);
    }
    let (suspended, archived_at, max_members, max_rooms): (
        bool,
        Option<DateTime<Utc>>,
        Option<i32>,
        Option<i32>,
    ) = sqlx::query_as(
        "SELECT suspended, archived_at, max_members, max_rooms FROM orgs WHERE id = $1",
    )
    .bind(org_id)
    .fetch_one(&mut **tx)
    .await?;
    if let Some(code) = read_only_code(suspended, archived_at.is_some()) {
        return Err(StoreError::Forbidden(code));
    }
    Ok(OrgGate {
        max_members,
        max_rooms,
    })
}

/// `Conflict(room_limit_reached)` when the org already has its most rooms.
pub(super) async fn ensure_room_quota(tx: &mut Tx<'_>, org_id: i64) -> StoreResult<()> {
    let gate = lock_writable_org(tx, org_id).await?;
    if let Some(max) = gate.max_rooms {
        let (rooms,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM rooms WHERE org_id = $1")
            .bind(org_id)
            .fetch_one(&mut **tx)
            .await?;
        if rooms >= i64::from(max) {
            return Err(StoreError::Conflict(ErrorCode::RoomLimitReached));
        }
    }
    Ok(())
}

/// Takes back what `user_id` had by a role they no longer have (`role`: the new one, `None`
/// out of the organization): their invitations beyond it are revoked and, no longer an ADMIN,
/// the webhooks they made are switched off (each hears every conversation, DMs included).
pub(super) async fn take_back_beyond(
    tx: &mut Tx<'_>,
    org_id: i64,
    user_id: i64,
    role: Option<Role>,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    revoke_invites_beyond(tx, org_id, user_id, role, now).await?;
    if role != Some(Role::Admin) {
        switch_off_webhooks_of(tx, org_id, user_id, now).await?;
    }
    Ok(())
}

impl SqlStore {
    async fn org_view(&self, org_id: i64, user_id: i64) -> StoreResult<Option<OrgView>> {
        let sql = format!("{ORG_VIEW_SELECT} WHERE o.id = $2");
        let row: Option<OrgViewRow> = sqlx::query_as(&sql)
            .bind(user_id)
            .bind(org_id)
            .fetch_optional(&self.read)
            .await?;
        row.map(OrgView::try_from).transpose()
    }

    async fn insert_org(
        &self,
        creator: i64,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<i64, sqlx::Error> {
        let mut tx = self.write.begin().await?;
        let org_id = insert_org_row(&mut tx, name, Some(creator), None, now).await?;
        sqlx::query(
            "INSERT INTO org_members (org_id, user_id, role, joined_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(org_id)
        .bind(creator)
        .bind(Role::Admin.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(org_id)
    }

    /// Adds a member with their seats in the PUBLIC rooms and the `member.joined` event;
    /// returns the rooms they were seated in.
    pub(super) async fn add_member(
        tx: &mut Tx<'_>,
        org_id: i64,
        user_id: i64,
        role: Role,
        via: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<i64>> {
        sqlx::query(
            "INSERT INTO org_members (org_id, user_id, role, joined_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(org_id)
        .bind(user_id)
        .bind(role.as_str())
        .bind(now)
        .execute(&mut **tx)
        .await?;
        let seated = Self::join_public_rooms(tx, org_id, user_id, now).await?;
        write_event(
            tx,
            org_id,
            &DomainEvent::joined(org_id, None, user_id, via),
            now,
        )
        .await?;
        Ok(seated)
    }

    /// Role of `user_id` inside a transaction.
    pub(super) async fn role_in(
        tx: &mut Tx<'_>,
        org_id: i64,
        user_id: i64,
    ) -> StoreResult<Option<Role>> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT role FROM org_members WHERE org_id = $1 AND user_id = $2")
                .bind(org_id)
                .bind(user_id)
                .fetch_optional(&mut **tx)
                .await?;
        row.map(|(r,)| parse_role(&r)).transpose()
    }

    /// Fails with `LastAdmin` when `user_id` is the only ADMIN of the org.
    /// `Forbidden(permission_denied)` unless `actor` is (still) an ADMIN of the org: the use
    /// case checked it on a read, and a removal or demotion may have committed since.
    pub(super) async fn ensure_still_admin(
        tx: &mut Tx<'_>,
        org_id: i64,
        actor: i64,
    ) -> StoreResult<()> {
        match Self::role_in(tx, org_id, actor).await? {
            Some(Role::Admin) => Ok(()),
            _ => Err(StoreError::Forbidden(ErrorCode::PermissionDenied)),
        }
    }

    /// `Conflict(managed_by_operator)` when the org's resource lists this ADMIN (`spec.admins`):
    /// the operator would invite them to be ADMIN again at its next look.
    async fn ensure_not_listed(tx: &mut Tx<'_>, org_id: i64, user_id: i64) -> StoreResult<()> {
        let listed: Option<(String,)> = sqlx::query_as(
            "SELECT a.email FROM org_spec_admins a JOIN users u ON u.email = a.email \
             WHERE a.org_id = $1 AND u.id = $2 AND a.listed",
        )
        .bind(org_id)
        .bind(user_id)
        .fetch_optional(&mut **tx)
        .await?;
        match listed {
            Some(_) => Err(StoreError::Conflict(ErrorCode::ManagedByOperator)),
            None => Ok(()),
        }
    }

    pub(super) async fn ensure_other_admin(tx: &mut Tx<'_>, org_id: i64) -> StoreResult<()> {
        let (admins,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM org_members WHERE org_id = $1 AND role = $2")
                .bind(org_id)
                .bind(Role::Admin.as_str())
                .fetch_one(&mut **tx)
                .await?;
        if admins <= 1 {
            return Err(StoreError::Conflict(ErrorCode::LastAdmin));
        }
        Ok(())
    }

    /// Locks an org the REST API may change as a whole (rename, delete) for `actor`, still its
    /// ADMIN: the use case checked the role on a read, and a demotion or removal may have
    /// committed since (a deletion by someone just removed erased the whole org).
    async fn lock_for_admin(tx: &mut Tx<'_>, org_id: i64, actor: i64) -> StoreResult<()> {
        if !lock_org(tx, org_id).await? {
            return Err(StoreError::NotFound);
        }
        Self::ensure_unmanaged(tx, org_id).await?;
        Self::ensure_still_admin(tx, org_id, actor).await
    }

    /// `NotFound` if the org does not exist, `Conflict` if the operator owns it.
    async fn ensure_unmanaged(tx: &mut Tx<'_>, org_id: i64) -> StoreResult<()> {
        let row: Option<(bool,)> = sqlx::query_as("SELECT managed FROM orgs WHERE id = $1")
            .bind(org_id)
            .fetch_optional(&mut **tx)
            .await?;
        match row {
            None => Err(StoreError::NotFound),
            Some((true,)) => Err(StoreError::Conflict(ErrorCode::ManagedByOperator)),
            Some((false,)) => Ok(()),
        }
    }
}

#[async_trait]
impl OrgStore for SqlStore {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn create_org(
        &self,
        creator: i64,
        name: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<OrgView> {
        // Two orgs created with the same name at once may pick the same free slug; the unique
        // index rejects one of them, which then picks again.
        let mut attempts = 0;
        let org_id = loop {
            match self.insert_org(creator, name, now).await {
                Ok(id) => break id,
                Err(e) if is_unique_violation(&e) && attempts < 5 => attempts += 1,
                Err(e) => return Err(e.into()),
            }
        };
        let sql = format!("{ORG_VIEW_SELECT} WHERE o.id = $2");
        let row: OrgViewRow = sqlx::query_as(&sql)
            .bind(creator)
            .bind(org_id)
            .fetch_one(&self.write)
            .await?;
        OrgView::try_from(row)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn orgs_for_user(&self, user_id: i64) -> StoreResult<Vec<OrgView>> {
        let sql = format!("{ORG_VIEW_SELECT} ORDER BY o.id");
        let rows: Vec<OrgViewRow> = sqlx::query_as(&sql)
            .bind(user_id)
            .fetch_all(&self.read)
            .await?;
        rows.into_iter().map(OrgView::try_from).collect()
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn org_for_member(&self, org_id: i64, user_id: i64) -> StoreResult<Option<OrgView>> {
        self.org_view(org_id, user_id).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn member_role(&self, org_id: i64, user_id: i64) -> StoreResult<Option<Role>> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT role FROM org_members WHERE org_id = $1 AND user_id = $2")
                .bind(org_id)
                .bind(user_id)
                .fetch_optional(&self.read)
                .await?;
        row.map(|(r,)| parse_role(&r)).transpose()
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn rename_org(&self, org_id: i64, actor: i64, name: &str) -> StoreResult<()> {
        let mut tx = self.write.begin().await?;
        Self::lock_for_admin(&mut tx, org_id, actor).await?;
        sqlx::query("UPDATE orgs SET name = $2 WHERE id = $1")
            .bind(org_id)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn delete_org(&self, org_id: i64, actor: i64) -> StoreResult<Vec<i64>> {
        let mut tx = self.write.begin().await?;
        Self::lock_for_admin(&mut tx, org_id, actor).await?;
        let rooms = Self::erase_org(&mut tx, org_id).await?;
        tx.commit().await?;
        Ok(rooms)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn org_members(&self, org_id: i64) -> StoreResult<Vec<OrgMember>> {
        let rows: Vec<OrgMemberRow> = sqlx::query_as(
            "SELECT m.user_id, u.email, u.first_name, u.last_name, m.role, m.joined_at \
             FROM org_members m JOIN users u ON u.id = m.user_id \
             WHERE m.org_id = $1 ORDER BY m.joined_at, m.user_id",
        )
        .bind(org_id)
        .fetch_all(&self.read)
        .await?;
        rows.into_iter().map(OrgMember::try_from).collect()
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn invitations_by(
        &self,
        inviter: i64,
        since: DateTime<Utc>,
    ) -> StoreResult<(i64, Option<DateTime<Utc>>)> {
        Ok(sqlx::query_as(
            "SELECT COUNT(*), MIN(created_at) FROM org_invites \
             WHERE invited_by = $1 AND created_at > $2",
        )
        .bind(inviter)
        .bind(since)
        .fetch_one(&self.read)
        .await?)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn create_invite(&self, invite: NewInvite, now: DateTime<Utc>) -> StoreResult<Invite> {
        let mut tx = self.write.begin().await?;
        lock_writable_org(&mut tx, invite.org_id).await?;
        // The use case checked the inviter's role on a read; a removal or demotion committed
        // since would leave an invitation they may no longer make.
        if let Some(inviter) = invite.invited_by {
            let role = Self::role_in(&mut tx, invite.org_id, inviter).await?;
            if !role.is_some_and(|role| role.may_invite(invite.role)) {
                return Err(StoreError::Forbidden(ErrorCode::PermissionDenied));
            }
        }
        let member: Option<(i64,)> = sqlx::query_as(
            "SELECT m.user_id FROM org_members m JOIN users u ON u.id = m.user_id WHERE m.org_id = $1 AND u.email = $2",
        )
        .bind(invite.org_id)
        .bind(&invite.email)
        .fetch_optional(&mut *tx)
        .await?;
        if member.is_some() {
            return Err(StoreError::Conflict(ErrorCode::AlreadyMember));
        }
        match open_invite(&mut tx, invite.org_id, &invite.email).await? {
            Some(open) if open.expires_at > now => {
                return Err(StoreError::Conflict(ErrorCode::InvitePending))
            }
            // An expired invitation no longer blocks a new one: retire it.
            Some(open) => revoke_invite(&mut tx, open.id, now).await?,
            None => {}
        }
        let id = insert_invite(&mut tx, &invite, now).await?;
        tx.commit().await?;
        Ok(Invite {
            id,
            org_id: invite.org_id,
            email: invite.email,
            role: invite.role,
            expires_at: invite.expires_at,
        })
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn open_invites(&self, org_id: i64, now: DateTime<Utc>) -> StoreResult<Vec<Invite>> {
        let rows: Vec<InviteRow> = sqlx::query_as(
            "SELECT id, org_id, email, role, expires_at, accepted_at, revoked_at FROM org_invites \
             WHERE org_id = $1 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $2 \
             ORDER BY id DESC",
        )
        .bind(org_id)
        .bind(now)
        .fetch_all(&self.read)
        .await?;
        rows.into_iter()
            .map(|row| {
                Ok(Invite {
                    id: row.id,
                    org_id: row.org_id,
                    email: row.email,
                    role: parse_role(&row.role)?,
                    expires_at: row.expires_at,
                })
            })
            .collect()
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn revoke_org_invite(
        &self,
        org_id: i64,
        invite_id: i64,
        by: Option<i64>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut tx = self.write.begin().await?;
        // Under the organization's lock, as removals and role changes are.
        lock_writable_org(&mut tx, org_id).await?;
        let open: Option<(String,)> = sqlx::query_as(
            "SELECT role FROM org_invites \
             WHERE id = $1 AND org_id = $2 AND accepted_at IS NULL AND revoked_at IS NULL",
        )
        .bind(invite_id)
        .bind(org_id)
        .fetch_optional(&mut *tx)
        .await?;
        let invited = parse_role(&open.ok_or(StoreError::NotFound)?.0)?;
        // The use case checked the role on a read; a demotion or removal may have committed
        // since, and revoking an ADMIN's invitation is an ADMIN's to do.
        if let Some(actor) = by {
            let role = Self::role_in(&mut tx, org_id, actor).await?;
            if !role.is_some_and(|r| r.may_invite(invited)) {
                return Err(StoreError::Forbidden(ErrorCode::PermissionDenied));
            }
        }
        sqlx::query("UPDATE org_invites SET revoked_at = $2 WHERE id = $1")
            .bind(invite_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn accept_invite(
        &self,
        token_hash: &str,
        user_id: i64,
        user_email: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<JoinedOrg> {
        let mut tx = self.write.begin().await?;
        let invite: Option<InviteRow> = sqlx::query_as(
            "SELECT id, org_id, email, role, expires_at, accepted_at, revoked_at FROM org_invites WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&mut *tx)
        .await?;
        let invite = match invite {
            Some(i) if i.accepted_at.is_none() && i.revoked_at.is_none() && i.expires_at > now => i,
            _ => return Err(StoreError::NotFound),
        };
        if !invite.email.eq_ignore_ascii_case(user_email) {
            return Err(StoreError::InviteEmailMismatch);
        }
        let gate = lock_writable_org(&mut tx, invite.org_id).await?;
        // Taken now, under the org's lock, only if still open: a revocation (or another
        // acceptance) committed since the read above wins, and this one finds nothing.
        let taken: Option<(i64,)> = sqlx::query_as(
            "UPDATE org_invites SET accepted_at = $2 \
             WHERE id = $1 AND accepted_at IS NULL AND revoked_at IS NULL RETURNING id",
        )
        .bind(invite.id)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        if taken.is_none() {
            return Err(StoreError::NotFound);
        }
        let invited = parse_role(&invite.role)?;
        let (role, seated) = match Self::role_in(&mut tx, invite.org_id, user_id).await? {
            // Already in, at a lesser role: the operator's ADMIN invitation to a listed member
            // (the API invites no member), its token read from the mailbox.
            Some(existing) if existing < invited => {
                change_role(&mut tx, invite.org_id, user_id, (existing, invited), now).await?;
                (invited, Vec::new())
            }
            // Already in at that role or above: keep it.
            Some(existing) => (existing, Vec::new()),
            None => {
                if let Some(max) = gate.max_members {
                    // The admins the organization's resource lists are not counted (their
                    // ADMIN invitations come from the operator).
                    let listed: Option<(String,)> = if invited == Role::Admin {
                        sqlx::query_as(
                            "SELECT a.email FROM org_spec_admins a, org_invites i \
                             WHERE a.org_id = $1 AND a.email = $2 AND i.id = $3 \
                               AND i.invited_by IS NULL",
                        )
                        .bind(invite.org_id)
                        .bind(&invite.email)
                        .bind(invite.id)
                        .fetch_optional(&mut *tx)
                        .await?
                    } else {
                        None
                    };
                    if listed.is_none()
                        && member_count(&mut *tx, invite.org_id).await? >= i64::from(max)
                    {
                        return Err(StoreError::Conflict(ErrorCode::MemberLimitReached));
                    }
                }
                let seated =
                    Self::add_member(&mut tx, invite.org_id, user_id, invited, "org_invite", now)
                        .await?;
                (invited, seated)
            }
        };
        if role == Role::Admin {
            // Made ADMIN by an invitation of the API's: the role is the API's, and the
            // operator's list takes back only what it gave.
            sqlx::query(
                "UPDATE org_spec_admins SET granted = FALSE WHERE org_id = $1 AND email = $2 \
                   AND EXISTS (SELECT 1 FROM org_invites WHERE id = $3 AND invited_by IS NOT NULL)",
            )
            .bind(invite.org_id)
            .bind(&invite.email)
            .bind(invite.id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(JoinedOrg {
            org_id: invite.org_id,
            role,
            seated,
        })
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn set_member_role(
        &self,
        org_id: i64,
        user_id: i64,
        role: Role,
        actor: i64,
    ) -> StoreResult<Vec<i64>> {
        let mut tx = self.write.begin().await?;
        lock_writable_org(&mut tx, org_id).await?;
        Self::ensure_still_admin(&mut tx, org_id, actor).await?;
        let current = Self::role_in(&mut tx, org_id, user_id)
            .await?
            .ok_or(StoreError::NotFound)?;
        if current == Role::Admin && role != Role::Admin {
            Self::ensure_other_admin(&mut tx, org_id).await?;
            Self::ensure_not_listed(&mut tx, org_id, user_id).await?;
        }
        // A role set through the API, the one they have included, is the API's: a demotion
        // the operator still owed this member (dropped from its list while the org's last
        // ADMIN) is forgotten.
        sqlx::query(
            "DELETE FROM org_spec_admins WHERE org_id = $1 AND NOT listed \
               AND email = (SELECT email FROM users WHERE id = $2)",
        )
        .bind(org_id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        if current == role {
            tx.commit().await?;
            return Ok(Vec::new());
        }
        if role == Role::Admin {
            // Promoted through the API while the operator's invitation waited: the role is the
            // API's, and dropping the address from the list leaves it. The operator's
            // invitation goes (nothing would take it back once the list stops granting, and
            // after a later demotion it would make them ADMIN again).
            sqlx::query(
                "UPDATE org_spec_admins SET granted = FALSE WHERE org_id = $1 \
                   AND email = (SELECT email FROM users WHERE id = $2)",
            )
            .bind(org_id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE org_invites SET revoked_at = $3 WHERE org_id = $1 AND invited_by IS NULL \
                   AND role = 'ADMIN' AND accepted_at IS NULL AND revoked_at IS NULL \
                   AND email = (SELECT email FROM users WHERE id = $2)",
            )
            .bind(org_id)
            .bind(user_id)
            .bind(Utc::now())
            .execute(&mut *tx)
            .await?;
        }
        let now = Utc::now();
        change_role(&mut tx, org_id, user_id, (current, role), now).await?;
        take_back_beyond(&mut tx, org_id, user_id, Some(role), now).await?;
        // A seat in a MANAGER_ONLY room goes with the role that allowed it.
        let left = if AccessLevel::ManagerOnly.admits(role) {
            Vec::new()
        } else {
            Self::leave_manager_rooms(&mut tx, org_id, user_id, now).await?
        };
        tx.commit().await?;
        Ok(left)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn remove_member(
        &self,
        org_id: i64,
        user_id: i64,
        how: Departure,
    ) -> StoreResult<Vec<i64>> {
        let mut tx = self.write.begin().await?;
        match how {
            Departure::Leaves => {
                if !lock_org(&mut tx, org_id).await? {
                    return Err(StoreError::NotFound);
                }
            }
            Departure::Removed { by } => {
                lock_writable_org(&mut tx, org_id).await?;
                Self::ensure_still_admin(&mut tx, org_id, by).await?;
            }
        }
        let current = Self::role_in(&mut tx, org_id, user_id)
            .await?
            .ok_or(StoreError::NotFound)?;
        if current == Role::Admin {
            Self::ensure_other_admin(&mut tx, org_id).await?;
            Self::ensure_not_listed(&mut tx, org_id, user_id).await?;
        }
        sqlx::query("DELETE FROM org_members WHERE org_id = $1 AND user_id = $2")
            .bind(org_id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        let left = Self::leave_org_rooms(&mut tx, org_id, user_id, None).await?;
        let via = match how {
            Departure::Leaves => LeftVia::Left,
            Departure::Removed { .. } => LeftVia::Removed,
        };
        let now = Utc::now();
        take_back_beyond(&mut tx, org_id, user_id, None, now).await?;
        let event = DomainEvent::left(org_id, None, user_id, left.clone(), via);
        write_event(&mut tx, org_id, &event, now).await?;
        tx.commit().await?;
        Ok(left)
    }
}
