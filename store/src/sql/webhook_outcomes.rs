//! What an attempt's outcome does to its webhook, beside its delivery's row: the row locks
//! the outcomes are written under, the failing mark, and the two switch-offs (a 410 from the
//! target, or every attempt failing for too long).

use chrono::{DateTime, Utc};

use super::webhook_queue::pause_deliveries;
use super::{Tx, WEBHOOK_LOCK};
use crate::sql::rows::placeholders;
use crate::{AttemptOutcome, AttemptResult, StoreResult};

/// Locks the webhooks `ids` (PostgreSQL; ascending, so two callers never wait on each other)
/// before their deliveries' outcomes are written: the outcomes then read whether each is on
/// after any switch under way has committed.
pub(super) async fn lock_webhooks(tx: &mut Tx<'_>, mut ids: Vec<i64>) -> StoreResult<()> {
    if WEBHOOK_LOCK.is_empty() {
        return Ok(());
    }
    ids.sort_unstable();
    ids.dedup();
    for chunk in ids.chunks(500) {
        let sql = format!(
            "SELECT id FROM webhooks WHERE id IN ({}) ORDER BY id{WEBHOOK_LOCK}",
            placeholders(1, chunk.len())
        );
        let mut query = sqlx::query(&sql);
        for id in chunk {
            query = query.bind(*id);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// How long without a failed attempt ends a webhook's failing: a delivery that fails is tried
/// again within the hour (the backoff's cap), so nothing was tried in between, and the next
/// failure starts a new count rather than adding the quiet days to it.
const FAILING_GAP_HOURS: i64 = 2;

/// What a batch of outcomes says of one webhook's target, in the order they came.
#[derive(Clone, Copy, PartialEq, Eq)]
enum TargetNote {
    /// Only failures: failing since the first of them, or since before if it already was.
    Failed,
    /// The last outcome was delivered: not failing.
    Delivered,
    /// Failures after a delivery: failing since now.
    FailedAfterDelivered,
}

/// Marks the outcomes' webhooks failing since `now` (unless they already were, with a failure
/// less than [`FAILING_GAP_HOURS`] ago) or not failing, one statement per webhook and URL. An
/// outcome of a URL the webhook no longer points at says nothing of its target.
pub(super) async fn note_failing(
    tx: &mut Tx<'_>,
    outcomes: &[AttemptOutcome],
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let mut notes: Vec<((i64, &str), TargetNote)> = Vec::new();
    for outcome in outcomes {
        let delivered = match outcome.result {
            AttemptResult::Delivered { .. } => true,
            AttemptResult::Retry { .. } | AttemptResult::Failed { .. } => false,
            // Switched off by it, or an answer of a URL the webhook has left.
            AttemptResult::Gone => continue,
        };
        let target = (outcome.webhook_id, outcome.url.as_str());
        let next = |before: Option<TargetNote>| match (before, delivered) {
            (_, true) => TargetNote::Delivered,
            (None | Some(TargetNote::Failed), false) => TargetNote::Failed,
            (Some(TargetNote::Delivered | TargetNote::FailedAfterDelivered), false) => {
                TargetNote::FailedAfterDelivered
            }
        };
        match notes.iter_mut().find(|(t, _)| *t == target) {
            Some((_, note)) => *note = next(Some(*note)),
            None => notes.push((target, next(None))),
        }
    }
    for ((webhook_id, url), note) in notes {
        let sql = match note {
            TargetNote::Delivered => {
                "UPDATE webhooks SET failing_since = NULL \
                 WHERE id = $1 AND url = $2 AND failing_since IS NOT NULL"
            }
            TargetNote::FailedAfterDelivered => {
                "UPDATE webhooks SET failing_since = $3, last_failed_at = $3 \
                 WHERE id = $1 AND url = $2"
            }
            TargetNote::Failed => {
                "UPDATE webhooks SET failing_since = CASE \
                   WHEN failing_since IS NULL OR last_failed_at IS NULL OR last_failed_at < $4 \
                   THEN $3 ELSE failing_since END, last_failed_at = $3 \
                 WHERE id = $1 AND url = $2"
            }
        };
        let mut query = sqlx::query(sql).bind(webhook_id).bind(url);
        if note != TargetNote::Delivered {
            query = query.bind(now);
        }
        if note == TargetNote::Failed {
            query = query.bind(now - chrono::Duration::hours(FAILING_GAP_HOURS));
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Switches off the webhook of a delivery given up for good, and parks its waiting deliveries,
/// when every attempt to it has failed since `before` or earlier and nobody has changed it
/// since then (a webhook pointed elsewhere or switched on again gets its full time), while it
/// is on and points where the attempt went.
pub(super) async fn switch_off_failing(
    tx: &mut Tx<'_>,
    outcome: &AttemptOutcome,
    before: DateTime<Utc>,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let hours = (now - before).num_hours();
    let done = sqlx::query(
        "UPDATE webhooks SET is_active = FALSE, updated_at = $2, disabled_reason = $5 \
         WHERE id = $1 AND url = $3 AND is_active \
           AND failing_since <= $4 AND updated_at <= $4",
    )
    .bind(outcome.webhook_id)
    .bind(now)
    .bind(&outcome.url)
    .bind(before)
    .bind(format!(
        "every attempt to the target failed for {hours} hours or more"
    ))
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() > 0 {
        tracing::warn!(
            webhook_id = outcome.webhook_id,
            "webhook switched off: its target has failed every attempt"
        );
        pause_deliveries(tx, outcome.webhook_id, now).await?;
    }
    Ok(())
}

/// Switches off the webhook whose target answered `outcome` with 410 Gone, and parks its
/// waiting deliveries, if it is still on and still points where the attempt went; says whether
/// it did.
pub(super) async fn switch_off_gone(
    tx: &mut Tx<'_>,
    outcome: &AttemptOutcome,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE webhooks SET is_active = FALSE, updated_at = $2, \
           disabled_reason = 'the target answered 410 Gone' \
         WHERE id = $1 AND url = $3 AND is_active",
    )
    .bind(outcome.webhook_id)
    .bind(now)
    .bind(&outcome.url)
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    pause_deliveries(tx, outcome.webhook_id, now).await?;
    Ok(true)
}
