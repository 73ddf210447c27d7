//! Webhooks and their deliveries.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;
use chatboard_core::events::OutboxEvent;
use chatboard_core::model::{Webhook, WebhookDelivery};

/// A new webhook; events are already validated.
#[derive(Debug, Clone)]
pub struct NewWebhook {
    /// Organization.
    pub org_id: i64,
    /// Target URL, already checked.
    pub url: String,
    /// Event type names, or `["*"]`.
    pub events: Vec<String>,
    /// The HMAC key.
    pub secret: String,
    /// Deliver from the start?
    pub is_active: bool,
    /// Owned by a custom resource.
    pub managed: bool,
    /// Attempts per delivery (`None`: the deployment's default).
    pub max_attempts: Option<i32>,
    /// The ADMIN making it through the API, checked again under the organization's lock (a
    /// demotion may have committed since the use case's check); `None` for the operator's.
    pub created_by: Option<i64>,
}

/// Webhook fields to change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct WebhookPatch {
    /// New target URL, already checked.
    pub url: Option<String>,
    /// New event filter.
    pub events: Option<Vec<String>>,
    /// Switch delivery on or off (switching on clears `disabled_reason`).
    pub is_active: Option<bool>,
    /// The ADMIN making the change through the API, checked again under the organization's
    /// lock; switching the webhook on or changing its URL makes it theirs (`created_by`).
    pub by: Option<i64>,
}

/// Most webhooks one organization may have, however they were made (REST or the operator):
/// checked under the org's lock, so concurrent creations cannot overshoot it.
pub const MAX_WEBHOOKS_PER_ORG: i64 = 100;

/// A delivery claimed for an attempt, with what the request needs.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    /// Delivery id.
    pub id: i64,
    /// Webhook id.
    pub webhook_id: i64,
    /// Target URL.
    pub url: String,
    /// HMAC key.
    pub secret: String,
    /// Attempts made before this one.
    pub attempts: i32,
    /// The webhook's own attempt limit, if it has one.
    pub max_attempts: Option<i32>,
    /// The event to deliver.
    pub event: OutboxEvent,
}

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptResult {
    /// The target answered 2xx.
    Delivered {
        /// Its status code.
        status_code: i32,
    },
    /// Failed; try again at `next_attempt_at`.
    Retry {
        /// The target's status code, if it answered.
        status_code: Option<i32>,
        /// What went wrong.
        error: String,
        /// When to try again.
        next_attempt_at: DateTime<Utc>,
    },
    /// Failed for the last time.
    Failed {
        /// The target's status code, if it answered.
        status_code: Option<i32>,
        /// What went wrong.
        error: String,
    },
    /// The target answered 410: the delivery fails and the webhook is switched off.
    Gone,
}

/// The outcome of one attempt, to record.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptOutcome {
    /// Delivery id.
    pub delivery_id: i64,
    /// Its webhook.
    pub webhook_id: i64,
    /// The URL it was sent to: a 410 switches the webhook off only while it still points there.
    pub url: String,
    /// The claim it was attempted under (the `lease_until` it was claimed with): an outcome
    /// whose claim lapsed and was taken over is not recorded.
    pub claimed_until: DateTime<Utc>,
    /// What happened.
    pub result: AttemptResult,
}

/// Webhooks and their deliveries. Callers check permissions and validate URLs and filters.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Creates a webhook (`NotFound`, `Forbidden(org_suspended | org_archived)`,
    /// `Conflict(too_many_webhooks)`).
    async fn create_webhook(&self, hook: NewWebhook, now: DateTime<Utc>) -> StoreResult<Webhook>;
    /// The organization's webhooks, oldest first.
    async fn webhooks_of_org(&self, org_id: i64) -> StoreResult<Vec<Webhook>>;
    /// One webhook.
    async fn webhook(&self, id: i64) -> StoreResult<Option<Webhook>>;
    /// Changes a webhook (`NotFound`, `Forbidden(org_suspended | org_archived)`,
    /// `Conflict(managed_by_operator)`).
    async fn update_webhook(
        &self,
        id: i64,
        patch: WebhookPatch,
        now: DateTime<Utc>,
    ) -> StoreResult<Webhook>;
    /// Deletes a webhook and its delivery log (`NotFound`,
    /// `Forbidden(org_suspended | org_archived)`, `Conflict(managed_by_operator)`); with `by`,
    /// `Forbidden(permission_denied)` unless that user is still an ADMIN of its organization.
    async fn delete_webhook(&self, id: i64, by: Option<i64>) -> StoreResult<()>;
    /// The delivery log, newest first, optionally before a delivery id.
    async fn webhook_deliveries(
        &self,
        webhook_id: i64,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<WebhookDelivery>>;
    /// Records a `webhook.test` event for one webhook and its delivery; returns the delivery id.
    /// Checked again under their locks: `Forbidden(org_suspended | org_archived)`, and
    /// `Conflict(webhook_inactive)` while the webhook is switched off, and with `by`,
    /// `Forbidden(permission_denied)` unless that user is still an ADMIN of its organization.
    async fn create_test_delivery(
        &self,
        webhook_id: i64,
        by: Option<i64>,
        now: DateTime<Utc>,
    ) -> StoreResult<i64>;
    /// Queues a delivery of each event to every active webhook of its org that wants it; an
    /// event seen again adds nothing. Returns how many deliveries were added.
    async fn fan_out_deliveries(
        &self,
        events: &[OutboxEvent],
        now: DateTime<Utc>,
    ) -> StoreResult<u64>;
    /// Claims up to `limit` deliveries due at `now` (of active webhooks other than `skip`,
    /// oldest due first) until `lease_until`: no one else claims them before then, and if no
    /// outcome is recorded by then they are due again. A delivery whose event cannot be read, or
    /// whose message is gone, is marked failed instead of returned, and another takes its
    /// place: fewer than `limit` means that no more are due.
    async fn claim_due_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
        skip: &[i64],
    ) -> StoreResult<Vec<DueDelivery>>;
    /// Hands claimed deliveries back, due at `at` (only while the claim is still this one).
    async fn release_deliveries(
        &self,
        ids: &[i64],
        claimed_until: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Records attempt outcomes (a 410 also switches its webhook off). A failed attempt marks
    /// its webhook failing since then, unless it already was; a delivered one clears the mark.
    /// With `switch_off_after`, a delivery given up for good switches off its webhook when it
    /// has been failing, and unchanged, for at least that long.
    async fn record_attempts(
        &self,
        outcomes: &[AttemptOutcome],
        switch_off_after: Option<chrono::Duration>,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Deliveries of active webhooks due at `now` or being attempted, and since when the
    /// longest-waiting due one has been due (`None`: none is waiting for a dispatcher). A retry
    /// scheduled for later is not waiting yet, so a target that keeps failing does not make the
    /// backlog look old while the dispatcher is idle.
    async fn delivery_backlog(
        &self,
        now: DateTime<Utc>,
    ) -> StoreResult<(i64, Option<DateTime<Utc>>)>;
}
