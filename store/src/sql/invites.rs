//! Invitations' rows: the open one of an address, revoking, and storing one with its event and
//! email (the use cases that make and accept them are in `orgs.rs`).

use chrono::{DateTime, Utc};

use super::email::{insert_email, EmailOwner};
use super::outbox::write_event;
use super::Tx;
use crate::sql::rows::{is_unique_violation, placeholders};
use crate::{NewInvite, StoreError, StoreResult};
use chatboard_core::error_code::ErrorCode;
use chatboard_core::events::{DomainEvent, MemberInvited};
use chatboard_core::model::Role;

/// An open invitation.
pub(super) struct OpenInvite {
    pub(super) id: i64,
    pub(super) role: String,
    pub(super) expires_at: DateTime<Utc>,
    /// Who made it; `None` for the operator's.
    pub(super) invited_by: Option<i64>,
}

/// The open (neither accepted nor revoked) invitation for an address, if any.
pub(super) async fn open_invite(
    tx: &mut Tx<'_>,
    org_id: i64,
    email: &str,
) -> StoreResult<Option<OpenInvite>> {
    let row: Option<(i64, String, DateTime<Utc>, Option<i64>)> = sqlx::query_as(
        "SELECT id, role, expires_at, invited_by FROM org_invites \
         WHERE org_id = $1 AND email = $2 AND accepted_at IS NULL AND revoked_at IS NULL",
    )
    .bind(org_id)
    .bind(email)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(|(id, role, expires_at, invited_by)| OpenInvite {
        id,
        role,
        expires_at,
        invited_by,
    }))
}

pub(super) async fn revoke_invite(tx: &mut Tx<'_>, id: i64, now: DateTime<Utc>) -> StoreResult<()> {
    sqlx::query("UPDATE org_invites SET revoked_at = $2 WHERE id = $1")
        .bind(id)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Revokes the open invitations `inviter` made in the org that `role` (theirs now; `None` once
/// they are gone) may not hand out. They would otherwise outlive the role that made them: a
/// member removed or demoted could accept one at an address of theirs and be back at the role
/// they had. Their emails go with them (see `emails.invite_id`).
pub(super) async fn revoke_invites_beyond(
    tx: &mut Tx<'_>,
    org_id: i64,
    inviter: i64,
    role: Option<Role>,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let beyond: Vec<&str> = [Role::Member, Role::Manager, Role::Admin]
        .into_iter()
        .filter(|invited| !role.is_some_and(|mine| mine.may_invite(*invited)))
        .map(Role::as_str)
        .collect();
    if beyond.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "UPDATE org_invites SET revoked_at = $3 WHERE org_id = $1 AND invited_by = $2 \
           AND accepted_at IS NULL AND revoked_at IS NULL AND role IN ({})",
        placeholders(4, beyond.len())
    );
    let mut query = sqlx::query(&sql).bind(org_id).bind(inviter).bind(now);
    for role in beyond {
        query = query.bind(role);
    }
    query.execute(&mut **tx).await?;
    Ok(())
}

/// Stores an invitation with its `member.invited` event and its email; `Conflict(invite_pending)`
/// if another is open for the address.
pub(super) async fn insert_invite(
    tx: &mut Tx<'_>,
    invite: &NewInvite,
    now: DateTime<Utc>,
) -> StoreResult<i64> {
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO org_invites (org_id, email, role, token_hash, invited_by, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(invite.org_id)
    .bind(&invite.email)
    .bind(invite.role.as_str())
    .bind(&invite.token_hash)
    .bind(invite.invited_by)
    .bind(now)
    .bind(invite.expires_at)
    .fetch_one(&mut **tx)
    .await
    .map_err(|e| if is_unique_violation(&e) { StoreError::Conflict(ErrorCode::InvitePending) } else { e.into() })?;
    let event = DomainEvent::MemberInvited(MemberInvited {
        org_id: invite.org_id,
        invite_id: id,
        email: invite.email.clone(),
        role: invite.role,
        invited_by: invite.invited_by,
    });
    write_event(tx, invite.org_id, &event, now).await?;
    if let Some(email) = &invite.email_message {
        insert_email(tx, email, EmailOwner::Invite(id), now).await?;
    }
    Ok(id)
}
