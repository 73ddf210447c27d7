//! Webhooks and their deliveries.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::orgs::lock_writable_org;
use super::webhook_outcomes::{lock_webhooks, note_failing, switch_off_failing, switch_off_gone};
use super::webhook_queue::{
    drop_unwanted_deliveries, pause_deliveries, resume_deliveries, unless_paused,
};
use super::{SqlStore, Tx, FAN_OUT_LOCK, WEBHOOK_LOCK};
use crate::sql::rows::{
    encode_events, placeholders, DeliveryRow, WebhookRow, DELIVERY_COLUMNS, WEBHOOK_COLUMNS,
};
use crate::{
    AttemptOutcome, AttemptResult, DueDelivery, NewWebhook, StoreError, StoreResult, WebhookPatch,
    WebhookStore,
};
use chatboard_core::error_code::ErrorCode;
use chatboard_core::events::{DomainEvent, OutboxEvent};
use chatboard_core::model::{Webhook, WebhookDelivery};

/// Organizations one webhook lookup asks about.
const ORGS_PER_QUERY: usize = 500;
/// Events one fan-out statement takes (four parameters each).
const EVENTS_PER_FAN_OUT: usize = 250;

impl SqlStore {
    /// Locks the organization of webhook `id` for a change made through the API, then checks
    /// the webhook: `NotFound` for a missing one, `Forbidden(org_suspended | org_archived)` when
    /// the organization takes no writes (read here, so a suspension that committed after the
    /// caller's own check still refuses the change), `Conflict` for one a custom resource owns.
    /// Returns its organization.
    async fn lock_changeable_webhook(tx: &mut Tx<'_>, id: i64) -> StoreResult<i64> {
        let org: Option<(i64,)> = sqlx::query_as("SELECT org_id FROM webhooks WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?;
        let (org_id,) = org.ok_or(StoreError::NotFound)?;
        lock_writable_org(tx, org_id).await?;
        let row: Option<(bool,)> = sqlx::query_as("SELECT managed FROM webhooks WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?;
        match row {
            None => Err(StoreError::NotFound),
            Some((true,)) => Err(StoreError::Conflict(ErrorCode::ManagedByOperator)),
            Some((false,)) => Ok(org_id),
        }
    }
}

/// Switches off, with their waiting deliveries, the webhooks of `org_id` that `user_id` made
/// (or last switched on), as they stop being one of its ADMINs. Not one a resource owns now
/// (taken back by an Organization after an ADMIN switched it on): its resource says whether
/// it is on, and nothing through the API could switch it on again.
pub(super) async fn switch_off_webhooks_of(
    tx: &mut Tx<'_>,
    org_id: i64,
    user_id: i64,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let switched: Vec<i64> = sqlx::query_scalar(
        "UPDATE webhooks SET is_active = FALSE, updated_at = $3, \
           disabled_reason = 'the ADMIN who made it (or last switched it on) is no longer one' \
         WHERE org_id = $1 AND created_by = $2 AND is_active AND NOT managed RETURNING id",
    )
    .bind(org_id)
    .bind(user_id)
    .bind(now)
    .fetch_all(&mut **tx)
    .await?;
    for id in switched {
        pause_deliveries(tx, id, now).await?;
    }
    Ok(())
}

/// Locks the organization and refuses it when it takes no writes
/// (`Forbidden(org_suspended | org_archived)`) or already has its most webhooks
/// (`Conflict(too_many_webhooks)`): called before one is added to it, so that two additions at once cannot both
/// pass the count.
pub(super) async fn ensure_webhook_room(tx: &mut Tx<'_>, org_id: i64) -> StoreResult<()> {
    lock_writable_org(tx, org_id).await?;
    webhook_room_left(tx, org_id).await
}

/// `Conflict(too_many_webhooks)` when the organization (already locked by the caller) has its
/// most webhooks.
pub(super) async fn webhook_room_left(tx: &mut Tx<'_>, org_id: i64) -> StoreResult<()> {
    let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM webhooks WHERE org_id = $1")
        .bind(org_id)
        .fetch_one(&mut **tx)
        .await?;
    if count >= crate::MAX_WEBHOOKS_PER_ORG {
        return Err(StoreError::Conflict(ErrorCode::TooManyWebhooks));
    }
    Ok(())
}

#[async_trait]
impl WebhookStore for SqlStore {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn create_webhook(&self, hook: NewWebhook, now: DateTime<Utc>) -> StoreResult<Webhook> {
        let sql = format!(
            "INSERT INTO webhooks (org_id, url, events, secret, is_active, managed, max_attempts, \
               created_at, updated_at, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9) RETURNING {WEBHOOK_COLUMNS}"
        );
        let mut tx = self.write.begin().await?;
        ensure_webhook_room(&mut tx, hook.org_id).await?;
        if let Some(actor) = hook.created_by {
            Self::ensure_still_admin(&mut tx, hook.org_id, actor).await?;
        }
        let row: WebhookRow = sqlx::query_as(&sql)
            .bind(hook.org_id)
            .bind(&hook.url)
            .bind(encode_events(&hook.events))
            .bind(&hook.secret)
            .bind(hook.is_active)
            .bind(hook.managed)
            .bind(hook.max_attempts)
            .bind(now)
            .bind(hook.created_by)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        row.try_into()
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn webhooks_of_org(&self, org_id: i64) -> StoreResult<Vec<Webhook>> {
        let sql = format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE org_id = $1 ORDER BY id");
        let rows: Vec<WebhookRow> = sqlx::query_as(&sql)
            .bind(org_id)
            .fetch_all(&self.read)
            .await?;
        rows.into_iter().map(Webhook::try_from).collect()
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn webhook(&self, id: i64) -> StoreResult<Option<Webhook>> {
        let sql = format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = $1");
        let row: Option<WebhookRow> = sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(&self.read)
            .await?;
        row.map(Webhook::try_from).transpose()
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn update_webhook(
        &self,
        id: i64,
        patch: WebhookPatch,
        now: DateTime<Utc>,
    ) -> StoreResult<Webhook> {
        let mut tx = self.write.begin().await?;
        let org_id = Self::lock_changeable_webhook(&mut tx, id).await?;
        if let Some(actor) = patch.by {
            Self::ensure_still_admin(&mut tx, org_id, actor).await?;
        }
        // Switching a webhook on forgets why it had been switched off. Switched on or pointed
        // elsewhere, it is the changer's, and not failing; otherwise changed (its events, or
        // switched off), a failing one is failing since the change, from which the switch-off
        // counts too; a request that changes nothing leaves it.
        let sql = format!(
            "UPDATE webhooks SET url = COALESCE($2, url), events = COALESCE($3, events), \
               is_active = COALESCE($4, is_active), \
               disabled_reason = CASE WHEN $4 THEN NULL ELSE disabled_reason END, \
               created_by = CASE WHEN $4 OR $2 IS NOT NULL THEN COALESCE($6, created_by) \
                 ELSE created_by END, \
               failing_since = CASE WHEN $4 OR $2 IS NOT NULL THEN NULL \
                 WHEN failing_since IS NOT NULL AND ($3 IS NOT NULL OR $4 IS NOT NULL) THEN $5 \
                 ELSE failing_since END, \
               updated_at = $5 \
             WHERE id = $1 RETURNING {WEBHOOK_COLUMNS}"
        );
        let row: WebhookRow = sqlx::query_as(&sql)
            .bind(id)
            .bind(patch.url)
            .bind(patch.events.as_deref().map(encode_events))
            .bind(patch.is_active)
            .bind(now)
            .bind(patch.by)
            .fetch_one(&mut *tx)
            .await?;
        if let Some(events) = &patch.events {
            drop_unwanted_deliveries(&mut tx, id, events, now).await?;
        }
        match patch.is_active {
            Some(false) => pause_deliveries(&mut tx, id, now).await?,
            Some(true) => resume_deliveries(&mut tx, id, now).await?,
            None => {}
        }
        tx.commit().await?;
        row.try_into()
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn delete_webhook(&self, id: i64, by: Option<i64>) -> StoreResult<()> {
        let mut tx = self.write.begin().await?;
        let org_id = Self::lock_changeable_webhook(&mut tx, id).await?;
        if let Some(actor) = by {
            Self::ensure_still_admin(&mut tx, org_id, actor).await?;
        }
        sqlx::query("DELETE FROM webhooks WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn webhook_deliveries(
        &self,
        webhook_id: i64,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<WebhookDelivery>> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries \
             WHERE webhook_id = $1 AND ($2 IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"
        );
        let rows: Vec<DeliveryRow> = sqlx::query_as(&sql)
            .bind(webhook_id)
            .bind(before)
            .bind(i64::from(limit))
            .fetch_all(&self.read)
            .await?;
        rows.into_iter().map(WebhookDelivery::try_from).collect()
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn create_test_delivery(
        &self,
        webhook_id: i64,
        by: Option<i64>,
        now: DateTime<Utc>,
    ) -> StoreResult<i64> {
        let mut tx = self.write.begin().await?;
        let org: Option<(i64,)> = sqlx::query_as("SELECT org_id FROM webhooks WHERE id = $1")
            .bind(webhook_id)
            .fetch_optional(&mut *tx)
            .await?;
        let (org_id,) = org.ok_or(StoreError::NotFound)?;
        // The use case checked both on a read: an organization suspended, or the webhook
        // switched off, since then takes no test (one queued for a webhook that is off would
        // sit parked until it is switched on, and be sent then).
        lock_writable_org(&mut tx, org_id).await?;
        if let Some(actor) = by {
            Self::ensure_still_admin(&mut tx, org_id, actor).await?;
        }
        let sql = format!("SELECT is_active FROM webhooks WHERE id = $1{WEBHOOK_LOCK}");
        let active: Option<(bool,)> = sqlx::query_as(&sql)
            .bind(webhook_id)
            .fetch_optional(&mut *tx)
            .await?;
        match active {
            None => return Err(StoreError::NotFound),
            Some((false,)) => return Err(StoreError::Conflict(ErrorCode::WebhookInactive)),
            Some((true,)) => {}
        }
        let event = DomainEvent::webhook_test(webhook_id);
        let payload = event
            .payload()
            .map_err(|e| StoreError::Database(sqlx::Error::Encode(e.into())))?;
        let event_id = uuid::Uuid::new_v4().to_string();
        // Marked as handed over from the start: it is for this webhook only, so the relay must
        // not fan it out to the others.
        let (outbox_id,): (i64,) = sqlx::query_as(
            "INSERT INTO outbox (event_id, event_type, org_id, room_id, payload, created_at, published_at) \
             VALUES ($1, $2, $3, NULL, $4, $5, $5) RETURNING id",
        )
        .bind(&event_id)
        .bind(event.event_type().as_str())
        .bind(org_id)
        .bind(payload)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let (delivery_id,): (i64,) = sqlx::query_as(
            "INSERT INTO webhook_deliveries (webhook_id, outbox_id, event_id, event_type, status, \
               next_attempt_at, created_at) \
             VALUES ($1, $2, $3, $4, 'pending', $5, $5) RETURNING id",
        )
        .bind(webhook_id)
        .bind(outbox_id)
        .bind(&event_id)
        .bind(event.event_type().as_str())
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(delivery_id)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(events = events.len()))]
    async fn fan_out_deliveries(
        &self,
        events: &[OutboxEvent],
        now: DateTime<Utc>,
    ) -> StoreResult<u64> {
        // Most organizations have no webhook: one read finds those that do, and a batch with
        // none of them costs the writer nothing (it used to cost a statement per event).
        let mut orgs: Vec<i64> = events.iter().map(|e| e.org_id).collect();
        orgs.sort_unstable();
        orgs.dedup();
        let mut hooked: Vec<i64> = Vec::new();
        for chunk in orgs.chunks(ORGS_PER_QUERY) {
            let sql = format!(
                "SELECT DISTINCT org_id FROM webhooks WHERE is_active AND org_id IN ({})",
                placeholders(1, chunk.len())
            );
            let mut query = sqlx::query_as::<_, (i64,)>(&sql);
            for org in chunk {
                query = query.bind(*org);
            }
            hooked.extend(query.fetch_all(&self.read).await?.into_iter().map(|(o,)| o));
        }
        let wanted: Vec<&OutboxEvent> = events
            .iter()
            .filter(|e| hooked.contains(&e.org_id))
            .collect();
        // One statement per chunk of events, each on its own: a chunk that fails is tried
        // again with its batch, and the conflict clause makes that harmless. An event whose
        // outbox row is gone (a job queue that fell further behind than the outbox keeps
        // events) is delivered to no webhook rather than failing its batch for ever; so is
        // one whose position now holds another event (ids given out again after a restore of
        // the database): deliveries are written from the row at that position, which may be
        // another organization's.
        let mut added = 0;
        for chunk in wanted.chunks(EVENTS_PER_FAN_OUT) {
            let rows: Vec<String> = (0..chunk.len())
                .map(|i| format!("({})", placeholders(2 + 4 * i, 4)))
                .collect();
            // The filter is a JSON array of names: match the quoted name, or "*".
            let sql = format!(
                "WITH batch (outbox_id, event_id, event_type, org_id) AS (VALUES {}) \
                 INSERT INTO webhook_deliveries (webhook_id, outbox_id, event_id, event_type, \
                   status, next_attempt_at, created_at) \
                 SELECT w.id, b.outbox_id, b.event_id, b.event_type, 'pending', $1, $1 \
                 FROM batch b JOIN webhooks w ON w.org_id = b.org_id \
                   JOIN outbox o ON o.id = b.outbox_id AND o.event_id = b.event_id \
                     AND o.org_id = b.org_id \
                 WHERE w.is_active AND (w.events LIKE '%\"' || b.event_type || '\"%' \
                   OR w.events LIKE '%\"*\"%') ORDER BY w.id{FAN_OUT_LOCK} \
                 ON CONFLICT (webhook_id, outbox_id) DO NOTHING",
                rows.join(", ")
            );
            let mut query = sqlx::query(&sql).bind(now);
            for event in chunk {
                query = query
                    .bind(event.position)
                    .bind(&event.id)
                    .bind(&event.event_type)
                    .bind(event.org_id);
            }
            added += query.execute(&self.write).await?.rows_affected();
        }
        Ok(added)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn claim_due_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
        skip: &[i64],
    ) -> StoreResult<Vec<DueDelivery>> {
        // Those dropped (marked failed) make room for more: a short answer tells the
        // dispatcher that nothing more is due, and it would wait a poll interval.
        let mut due = Vec::new();
        loop {
            let wanted = limit.saturating_sub(due.len() as u32);
            if wanted == 0 {
                return Ok(due);
            }
            let (claimed, kept) = match self.claim_some(now, lease_until, wanted, skip).await {
                Ok(some) => some,
                // Those in hand go out; the error comes back with the next claim if it lasts.
                Err(e) if !due.is_empty() => {
                    tracing::warn!(error = %e, "claiming more webhook deliveries failed");
                    return Ok(due);
                }
                Err(e) => return Err(e),
            };
            let dropped = claimed > kept.len();
            due.extend(kept);
            if !dropped || claimed < wanted as usize {
                return Ok(due);
            }
        }
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn release_deliveries(
        &self,
        ids: &[i64],
        claimed_until: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut tx = self.write.begin().await?;
        if !WEBHOOK_LOCK.is_empty() {
            let mut hooks = Vec::new();
            for chunk in ids.chunks(500) {
                let sql = format!(
                    "SELECT DISTINCT webhook_id FROM webhook_deliveries WHERE id IN ({})",
                    placeholders(1, chunk.len())
                );
                let mut query = sqlx::query_scalar::<_, i64>(&sql);
                for id in chunk {
                    query = query.bind(*id);
                }
                hooks.extend(query.fetch_all(&mut *tx).await?);
            }
            lock_webhooks(&mut tx, hooks).await?;
        }
        for chunk in ids.chunks(500) {
            let sql = format!(
                "UPDATE webhook_deliveries SET next_attempt_at = {}, claimed_until = NULL \
                 WHERE next_attempt_at = $2 AND status IN ('pending', 'retrying') AND id IN ({})",
                unless_paused(1),
                placeholders(3, chunk.len())
            );
            let mut query = sqlx::query(&sql).bind(at).bind(claimed_until);
            for id in chunk {
                query = query.bind(*id);
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn record_attempts(
        &self,
        outcomes: &[AttemptOutcome],
        switch_off_after: Option<chrono::Duration>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        if outcomes.is_empty() {
            return Ok(());
        }
        let mut tx = self.write.begin().await?;
        lock_webhooks(&mut tx, outcomes.iter().map(|o| o.webhook_id).collect()).await?;
        // Before the switch-offs, which read it: a delivery in the batch ends the failing.
        note_failing(&mut tx, outcomes, now).await?;
        for outcome in outcomes {
            // A 410 switches the webhook off, but only while it still points where the attempt
            // went (and is on): a webhook moved to a new URL meanwhile (its old endpoint
            // retired with a 410) stays on, and the delivery goes to the new one.
            let switched_off = outcome.result == AttemptResult::Gone
                && switch_off_gone(&mut tx, outcome, now).await?;
            if let (AttemptResult::Failed { .. }, Some(after)) = (&outcome.result, switch_off_after)
            {
                switch_off_failing(&mut tx, outcome, now - after, now).await?;
            }
            let (status, code, error, next, delivered_at) = match &outcome.result {
                AttemptResult::Delivered { status_code } => {
                    ("delivered", Some(*status_code), None, None, Some(now))
                }
                AttemptResult::Retry {
                    status_code,
                    error,
                    next_attempt_at,
                } => (
                    "retrying",
                    *status_code,
                    Some(error.clone()),
                    Some(*next_attempt_at),
                    None,
                ),
                AttemptResult::Failed { status_code, error } => {
                    ("failed", *status_code, Some(error.clone()), None, None)
                }
                AttemptResult::Gone if switched_off => (
                    "failed",
                    Some(410),
                    Some("the target answered 410 Gone; the webhook was switched off".to_owned()),
                    None,
                    None,
                ),
                AttemptResult::Gone => (
                    "retrying",
                    Some(410),
                    Some(
                        "the target answered 410 Gone after the webhook was moved to another \
                         URL or switched off"
                            .to_owned(),
                    ),
                    Some(now),
                    None,
                ),
            };
            let sql = format!(
                "UPDATE webhook_deliveries SET status = $2, attempts = attempts + 1, \
                   last_status_code = $3, last_error = $4, next_attempt_at = {}, \
                   claimed_until = NULL, delivered_at = $6 \
                 WHERE id = $1 AND status IN ('pending', 'retrying') AND next_attempt_at = $7",
                unless_paused(5)
            );
            sqlx::query(&sql)
                .bind(outcome.delivery_id)
                .bind(status)
                .bind(code)
                .bind(error)
                .bind(next)
                .bind(delivered_at)
                .bind(outcome.claimed_until)
                .execute(&mut *tx)
                .await?;
            if status == "retrying" {
                // Its webhook may have been narrowed to other events while it was attempted:
                // then it is given up, as the queued ones were (`drop_unwanted_deliveries`). A
                // test delivery is among no webhook's events, and is asked for by name.
                sqlx::query(
                    "UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = NULL, \
                       last_error = 'no longer among the webhook''s events' \
                     WHERE id = $1 AND status = 'retrying' AND event_type <> 'webhook.test' \
                       AND NOT EXISTS ( \
                       SELECT 1 FROM webhooks w WHERE w.id = webhook_deliveries.webhook_id \
                         AND (w.events LIKE '%\"' || webhook_deliveries.event_type || '\"%' \
                           OR w.events LIKE '%\"*\"%'))",
                )
                .bind(outcome.delivery_id)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn delivery_backlog(
        &self,
        now: DateTime<Utc>,
    ) -> StoreResult<(i64, Option<DateTime<Utc>>)> {
        // Claimed ones carry their lease's end as `next_attempt_at` (and `claimed_until`): in
        // flight until then, due again after it. Counted apart, each from its own index: one
        // condition with both read every waiting delivery, parked ones included.
        let (count,): (i64,) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id \
                 WHERE d.status IN ('pending', 'retrying') AND d.next_attempt_at <= $1 AND w.is_active) \
               + (SELECT COUNT(*) FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id \
                 WHERE d.claimed_until IS NOT NULL AND d.status IN ('pending', 'retrying') \
                   AND d.next_attempt_at > $1 AND w.is_active)",
        )
        .bind(now)
        .fetch_one(&self.read)
        .await?;
        let oldest: Option<(DateTime<Utc>,)> = sqlx::query_as(
            "SELECT MIN(d.next_attempt_at) FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id \
             WHERE d.status IN ('pending', 'retrying') AND w.is_active AND d.next_attempt_at <= $1 \
             HAVING COUNT(*) > 0",
        )
        .bind(now)
        .fetch_optional(&self.read)
        .await?;
        Ok((count, oldest.map(|(t,)| t)))
    }
}
