//! Organizations and webhooks owned by custom resources (the operator's side).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::invites::{insert_invite, open_invite, revoke_invite};
use super::orgs::lock_org;
use super::orgs::{change_role, insert_org_row, member_count, take_back_beyond};
use super::webhook_queue::{drop_unwanted_deliveries, pause_deliveries, resume_deliveries};
use super::webhooks::webhook_room_left;
use super::{SqlStore, Tx, WEBHOOK_LOCK};
use crate::sql::rows::{encode_events, is_unique_violation, QuotaRow};
use crate::{
    AppliedAdmins, AppliedOrg, AppliedWebhook, ManagedOrg, ManagedOrgRef, ManagedWebhook,
    NewInvite, Seat, SpecAdmin, StoreError, StoreResult, TenantStore,
};
use chatboard_core::error_code::ErrorCode;
use chatboard_core::model::{OrgQuotas, Role};

/// A managed webhook's current columns, to compare with what its resource says.
#[derive(sqlx::FromRow)]
struct ManagedWebhookRow {
    id: i64,
    org_id: i64,
    url: String,
    events: String,
    secret: String,
    is_active: bool,
    managed: bool,
    max_attempts: Option<i32>,
    disabled_reason: Option<String>,
}

/// A managed org's current columns, to compare with what its resource says.
#[derive(sqlx::FromRow)]
struct ManagedOrgRow {
    id: i64,
    name: String,
    managed: bool,
    suspended: bool,
    archived_at: Option<DateTime<Utc>>,
    #[sqlx(flatten)]
    quotas: QuotaRow,
}

async fn user_id_by_email(tx: &mut Tx<'_>, email: &str) -> StoreResult<Option<i64>> {
    let row: Option<(i64,)> = sqlx::query_as("SELECT id FROM users WHERE email = $1")
        .bind(email)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(row.map(|(id,)| id))
}

impl SqlStore {
    /// Invites one listed admin by email unless they are ADMIN already; says what it did, and
    /// whether the list is what gives them the role (false: ADMIN already, another way).
    /// Neither an account nor a membership is proof of its address (sign-up checks none, and
    /// an inviter sees the token of the invitations they make): promoting whoever held a
    /// listed address let them take the organization. The operator's invitation goes to the
    /// mailbox alone, and accepting it raises a member to ADMIN.
    async fn grant_admin(
        tx: &mut Tx<'_>,
        org_id: i64,
        admin: &SpecAdmin,
        now: DateTime<Utc>,
        done: &mut AppliedAdmins,
    ) -> StoreResult<bool> {
        if let Some(user_id) = user_id_by_email(tx, &admin.email).await? {
            if Self::role_in(tx, org_id, user_id).await? == Some(Role::Admin) {
                return Ok(false);
            }
        }
        match open_invite(tx, org_id, &admin.email).await? {
            Some(open)
                if open.role == Role::Admin.as_str()
                    && open.expires_at > now
                    && open.invited_by.is_none() =>
            {
                done.awaiting.push(admin.email.clone());
                return Ok(true);
            }
            // Expired, for a lesser role, or made through the API (whose ADMIN saw its token,
            // and could take the listed address with it): replaced by the operator's own.
            Some(open) => revoke_invite(tx, open.id, now).await?,
            None => {}
        }
        let invite = NewInvite {
            org_id,
            email: admin.email.clone(),
            role: Role::Admin,
            token_hash: admin.token_hash.clone(),
            invited_by: None,
            expires_at: admin.expires_at,
            email_message: Some(admin.email_message.clone()),
        };
        insert_invite(tx, &invite, now).await?;
        done.invited.push(admin.email.clone());
        done.awaiting.push(admin.email.clone());
        Ok(true)
    }

    /// Takes back what the operator gave an address no longer listed; false when it cannot yet
    /// (the org's last ADMIN stays one).
    async fn revoke_admin(
        tx: &mut Tx<'_>,
        org_id: i64,
        email: &str,
        now: DateTime<Utc>,
        done: &mut AppliedAdmins,
    ) -> StoreResult<bool> {
        let mut revoked = false;
        if let Some(user_id) = user_id_by_email(tx, email).await? {
            if Self::role_in(tx, org_id, user_id).await? == Some(Role::Admin) {
                // The organization keeps an ADMIN, as the REST API makes sure of: the last
                // one stays, however the list changed.
                match Self::ensure_other_admin(tx, org_id).await {
                    Ok(()) => {}
                    Err(StoreError::Conflict(ErrorCode::LastAdmin)) => {
                        done.kept_last.push(email.to_owned());
                        return Ok(false);
                    }
                    Err(e) => return Err(e),
                }
                change_role(tx, org_id, user_id, (Role::Admin, Role::Member), now).await?;
                take_back_beyond(tx, org_id, user_id, Some(Role::Member), now).await?;
                let left = Self::leave_manager_rooms(tx, org_id, user_id, now).await?;
                done.seats_lost
                    .extend(left.into_iter().map(|room_id| Seat { room_id, user_id }));
                revoked = true;
            }
        }
        if let Some(open) = open_invite(tx, org_id, email)
            .await?
            .filter(|o| o.role == Role::Admin.as_str())
        {
            revoke_invite(tx, open.id, now).await?;
            revoked = true;
        }
        if revoked {
            done.revoked.push(email.to_owned());
        }
        Ok(true)
    }

    async fn create_managed_org(&self, org: &ManagedOrg, now: DateTime<Utc>) -> StoreResult<i64> {
        let mut attempts = 0;
        loop {
            let mut tx = self.write.begin().await?;
            let inserted =
                insert_org_row(&mut tx, &org.name, None, Some(&org.resource_key), now).await;
            match inserted {
                Ok(org_id) => {
                    Self::write_org_settings(&mut tx, org_id, org, None).await?;
                    tx.commit().await?;
                    return Ok(org_id);
                }
                // A concurrent insert took the slug (or the resource key): look again.
                Err(e) if is_unique_violation(&e) && attempts < 5 => attempts += 1,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Writes what a resource says into its org row (and takes it out of the archive).
    async fn write_org_settings(
        tx: &mut Tx<'_>,
        org_id: i64,
        org: &ManagedOrg,
        name: Option<&str>,
    ) -> StoreResult<()> {
        let q = &org.quotas;
        sqlx::query(
            "UPDATE orgs SET name = COALESCE($2, name), managed = $3, suspended = $4, archived_at = NULL, \
               max_members = $5, max_rooms = $6, upload_max_bytes = $7, retention_days = $8, rate_limit_per_minute = $9, \
               upload_pending_bytes = $10, upload_stored_bytes = $11 \
             WHERE id = $1",
        )
        .bind(org_id)
        .bind(name)
        .bind(true)
        .bind(org.suspended)
        .bind(q.max_members)
        .bind(q.max_rooms)
        .bind(q.upload_max_bytes)
        .bind(q.retention_days)
        .bind(q.rate_limit_per_minute)
        .bind(q.upload_pending_bytes)
        .bind(q.upload_stored_bytes)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}

#[async_trait]
impl TenantStore for SqlStore {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn apply_managed_org(
        &self,
        org: ManagedOrg,
        now: DateTime<Utc>,
    ) -> StoreResult<AppliedOrg> {
        let row: Option<ManagedOrgRow> = sqlx::query_as(
            "SELECT id, name, managed, suspended, archived_at, \
               max_members, max_rooms, upload_max_bytes, upload_pending_bytes, upload_stored_bytes, \
               retention_days, rate_limit_per_minute \
             FROM orgs WHERE resource_key = $1",
        )
        .bind(&org.resource_key)
        .fetch_optional(&self.write)
        .await?;
        let (org_id, created, changed) = match row {
            None => (self.create_managed_org(&org, now).await?, true, true),
            Some(row) => {
                let in_place = row.managed
                    && row.archived_at.is_none()
                    && row.name == org.name
                    && row.suspended == org.suspended
                    && OrgQuotas::from(row.quotas) == org.quotas;
                if !in_place {
                    let mut tx = self.write.begin().await?;
                    Self::write_org_settings(&mut tx, row.id, &org, Some(&org.name)).await?;
                    tx.commit().await?;
                }
                (row.id, row.archived_at.is_some(), !in_place)
            }
        };
        Ok(AppliedOrg {
            org_id,
            created,
            changed,
        })
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn apply_org_admins(
        &self,
        org_id: i64,
        admins: Vec<SpecAdmin>,
        now: DateTime<Utc>,
    ) -> StoreResult<AppliedAdmins> {
        let mut tx = self.write.begin().await?;
        if !lock_org(&mut tx, org_id).await? {
            return Err(StoreError::NotFound);
        }
        // What the list held at the last reconcile: (email, granted, listed), by email.
        let mut before: Vec<(String, bool, bool)> =
            sqlx::query_as("SELECT email, granted, listed FROM org_spec_admins WHERE org_id = $1")
                .bind(org_id)
                .fetch_all(&mut *tx)
                .await?;
        // In Rust's order, as `after` is sorted (the database's collation may differ).
        before.sort_unstable();
        let granted_before =
            |email: &str| before.iter().any(|(e, granted, _)| e == email && *granted);
        let mut done = AppliedAdmins::default();
        let mut after: Vec<(String, bool, bool)> = Vec::new();
        for admin in &admins {
            if after.iter().any(|(e, _, _)| *e == admin.email) {
                continue;
            }
            let gives = Self::grant_admin(&mut tx, org_id, admin, now, &mut done).await?;
            let granted = gives || granted_before(&admin.email);
            after.push((admin.email.clone(), granted, true));
        }
        for (email, granted, _) in &before {
            // An address ADMIN another way when it was listed is left as it is.
            if !*granted || admins.iter().any(|a| &a.email == email) {
                continue;
            }
            if !Self::revoke_admin(&mut tx, org_id, email, now, &mut done).await? {
                // Still the last ADMIN: kept, and demoted at a later reconcile.
                after.push((email.clone(), true, false));
            }
        }
        after.sort_unstable();
        if after != before {
            sqlx::query("DELETE FROM org_spec_admins WHERE org_id = $1")
                .bind(org_id)
                .execute(&mut *tx)
                .await?;
            for (email, granted, listed) in after {
                sqlx::query(
                    "INSERT INTO org_spec_admins (org_id, email, granted, listed) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(org_id)
                .bind(email)
                .bind(granted)
                .bind(listed)
                .execute(&mut *tx)
                .await?;
            }
        }
        done.member_count = member_count(&mut *tx, org_id).await?;
        tx.commit().await?;
        Ok(done)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn managed_org(&self, resource_key: &str) -> StoreResult<Option<ManagedOrgRef>> {
        let row: Option<(i64, Option<DateTime<Utc>>)> =
            sqlx::query_as("SELECT id, archived_at FROM orgs WHERE resource_key = $1")
                .bind(resource_key)
                .fetch_optional(&self.read)
                .await?;
        Ok(row.map(|(org_id, archived_at)| ManagedOrgRef {
            org_id,
            archived: archived_at.is_some(),
        }))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn archive_managed_org(
        &self,
        resource_key: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<i64>> {
        let mut tx = self.write.begin().await?;
        let row: Option<(i64,)> = sqlx::query_as(
            "UPDATE orgs SET archived_at = COALESCE(archived_at, $2), managed = $3 WHERE resource_key = $1 RETURNING id",
        )
        .bind(resource_key)
        .bind(now)
        .bind(false)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some((org_id,)) = row {
            // Its webhooks' resources are gone or going too; nothing may still point at them.
            sqlx::query("UPDATE webhooks SET managed = $2 WHERE org_id = $1")
                .bind(org_id)
                .bind(false)
                .execute(&mut *tx)
                .await?;
            // Nobody is listed any more, but what the list gave is remembered: a resource
            // taking the org back takes back, once an address is dropped from its list, the
            // role the list gave it (forgotten, that role would look given another way).
            sqlx::query("UPDATE org_spec_admins SET listed = $2 WHERE org_id = $1")
                .bind(org_id)
                .bind(false)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM org_spec_admins WHERE org_id = $1 AND NOT granted")
                .bind(org_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE org_invites SET revoked_at = $2 WHERE org_id = $1 AND accepted_at IS NULL AND revoked_at IS NULL")
                .bind(org_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(row.map(|(id,)| id))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn purge_managed_org(&self, resource_key: &str) -> StoreResult<Option<(i64, Vec<i64>)>> {
        let mut tx = self.write.begin().await?;
        // An archived org is no resource's: a resource of the same name that never applied (an
        // invalid spec, deleted at once) did not take it back, and its deletion leaves it be.
        let row: Option<(i64,)> =
            sqlx::query_as("SELECT id FROM orgs WHERE resource_key = $1 AND archived_at IS NULL")
                .bind(resource_key)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((org_id,)) = row else {
            return Ok(None);
        };
        let rooms = Self::erase_org(&mut tx, org_id).await?;
        tx.commit().await?;
        Ok(Some((org_id, rooms)))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn apply_managed_webhook(
        &self,
        hook: ManagedWebhook,
        now: DateTime<Utc>,
    ) -> StoreResult<AppliedWebhook> {
        let mut tx = self.write.begin().await?;
        // The organization first, then the webhook's row, held until the commit (the order
        // deleting an org takes them in): an outcome recorded meanwhile (a 410 switching it
        // off) then either comes before this read or waits for this write, never between.
        if !lock_org(&mut tx, hook.org_id).await? {
            return Err(StoreError::NotFound);
        }
        let sql = format!(
            "SELECT id, org_id, url, events, secret, is_active, managed, max_attempts, disabled_reason \
             FROM webhooks WHERE resource_key = $1{WEBHOOK_LOCK}"
        );
        let row: Option<ManagedWebhookRow> = sqlx::query_as(&sql)
            .bind(&hook.resource_key)
            .fetch_optional(&mut *tx)
            .await?;
        let events = encode_events(&hook.events);
        // A new webhook, or one moved to another organization, counts against that one's limit.
        if row.as_ref().is_none_or(|r| r.org_id != hook.org_id) {
            webhook_room_left(&mut tx, hook.org_id).await?;
        }
        let Some(row) = row else {
            let (id,): (i64,) = sqlx::query_as(
                "INSERT INTO webhooks (org_id, url, events, secret, is_active, managed, max_attempts, resource_key, \
                   created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) RETURNING id",
            )
            .bind(hook.org_id)
            .bind(&hook.url)
            .bind(&events)
            .bind(&hook.secret)
            .bind(hook.active)
            .bind(true)
            .bind(hook.max_attempts)
            .bind(&hook.resource_key)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(AppliedWebhook {
                webhook_id: id,
                created: true,
                changed: true,
                disabled_reason: None,
            });
        };
        // A webhook its target switched off (410) stays off until its URL changes or the
        // resource switches it off and on again: re-enabling it on every resync would only
        // collect another 410.
        let id = row.id;
        let disabled_reason = if row.url != hook.url || !hook.active {
            None
        } else {
            row.disabled_reason.clone()
        };
        let active = hook.active && disabled_reason.is_none();
        // The reason counts too: switched off by the resource, a webhook its target switched
        // off is already inactive, and only clearing the reason lets `active` back on later.
        let in_place = row.disabled_reason == disabled_reason
            && row.org_id == hook.org_id
            && row.url == hook.url
            && row.events == events
            && row.secret == hook.secret
            && row.is_active == active
            && row.managed
            && row.max_attempts == hook.max_attempts;
        if !in_place {
            // A new target, or one switched on again, is not known to fail.
            let new_target =
                row.url != hook.url || row.org_id != hook.org_id || (active && !row.is_active);
            sqlx::query(
                "UPDATE webhooks SET org_id = $2, url = $3, events = $4, secret = $5, is_active = $6, managed = $7, \
                   max_attempts = $8, disabled_reason = $9, updated_at = $10, created_by = NULL, \
                   failing_since = CASE WHEN $11 THEN NULL ELSE failing_since END WHERE id = $1",
            )
            .bind(id)
            .bind(hook.org_id)
            .bind(&hook.url)
            .bind(&events)
            .bind(&hook.secret)
            .bind(active)
            .bind(true)
            .bind(hook.max_attempts)
            .bind(&disabled_reason)
            .bind(now)
            .bind(new_target)
            .execute(&mut *tx)
            .await?;
            if row.org_id != hook.org_id {
                // Moved to another organization: what it held of the old one's events (due,
                // parked, and its delivery log, message text included) is not the new
                // one's to receive or to see.
                sqlx::query("DELETE FROM webhook_deliveries WHERE webhook_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            } else if row.events != events {
                drop_unwanted_deliveries(&mut tx, id, &hook.events, now).await?;
            }
            if row.is_active && !active {
                pause_deliveries(&mut tx, id, now).await?;
            } else if active && !row.is_active {
                resume_deliveries(&mut tx, id, now).await?;
            }
        }
        tx.commit().await?;
        Ok(AppliedWebhook {
            webhook_id: id,
            created: false,
            changed: !in_place,
            disabled_reason,
        })
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn purge_expired_messages(&self, now: DateTime<Utc>, limit: u32) -> StoreResult<u64> {
        let orgs: Vec<(i64, i32)> =
            sqlx::query_as("SELECT id, retention_days FROM orgs WHERE retention_days IS NOT NULL")
                .fetch_all(&self.read)
                .await?;
        let mut purged: u64 = 0;
        for (org_id, days) in orgs {
            let left = u64::from(limit).saturating_sub(purged);
            if left == 0 {
                break;
            }
            let cutoff = now - chrono::Duration::days(i64::from(days));
            let batch = i64::try_from(left).unwrap_or(i64::MAX);
            purged += self.purge_org_batch(org_id, cutoff, batch).await?;
        }
        Ok(purged)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn purge_erased_messages(&self, limit: u32) -> StoreResult<Option<u64>> {
        self.purge_erased_batch(i64::from(limit.max(1))).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn room_rate_limit(&self, room_id: i64) -> StoreResult<Option<(i64, Option<i32>)>> {
        Ok(sqlx::query_as("SELECT o.id, o.rate_limit_per_minute FROM rooms r JOIN orgs o ON o.id = r.org_id WHERE r.id = $1")
            .bind(room_id)
            .fetch_optional(&self.read)
            .await?)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn switch_off_managed_webhook(
        &self,
        resource_key: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<i64>> {
        let found: Option<(i64, i64)> =
            sqlx::query_as("SELECT id, org_id FROM webhooks WHERE resource_key = $1")
                .bind(resource_key)
                .fetch_optional(&self.read)
                .await?;
        let Some((id, org_id)) = found else {
            return Ok(None);
        };
        let mut tx = self.write.begin().await?;
        // In the order `apply_managed_webhook` takes them: the organization, then the row.
        if !lock_org(&mut tx, org_id).await? {
            return Ok(None);
        }
        let sql = format!(
            "SELECT is_active FROM webhooks WHERE id = $1 AND resource_key = $2{WEBHOOK_LOCK}"
        );
        let active: Option<(bool,)> = sqlx::query_as(&sql)
            .bind(id)
            .bind(resource_key)
            .fetch_optional(&mut *tx)
            .await?;
        if active != Some((true,)) {
            return Ok(None);
        }
        // Switched off by its resource, a reason its target gave (a 410) is cleared, as in an
        // apply: switching it on again later is what re-enables it.
        sqlx::query(
            "UPDATE webhooks SET is_active = $2, disabled_reason = NULL, updated_at = $3 \
             WHERE id = $1",
        )
        .bind(id)
        .bind(false)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        pause_deliveries(&mut tx, id, now).await?;
        tx.commit().await?;
        Ok(Some(id))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn remove_managed_webhook(&self, resource_key: &str) -> StoreResult<Option<i64>> {
        let row: Option<(i64,)> =
            sqlx::query_as("DELETE FROM webhooks WHERE resource_key = $1 RETURNING id")
                .bind(resource_key)
                .fetch_optional(&self.write)
                .await?;
        Ok(row.map(|(id,)| id))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn managed_webhook_id(&self, resource_key: &str) -> StoreResult<Option<i64>> {
        Ok(
            sqlx::query_scalar("SELECT id FROM webhooks WHERE resource_key = $1")
                .bind(resource_key)
                .fetch_optional(&self.read)
                .await?,
        )
    }
}
