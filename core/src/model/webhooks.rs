//! Webhooks and the log of their deliveries, as the API shows them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A webhook as the API shows it (never with its secret, except once at creation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Webhook {
    /// Webhook id.
    pub id: i64,
    /// Organization id.
    pub org: i64,
    /// Target URL (http or https).
    pub url: String,
    /// Event types delivered; `["*"]` means all.
    pub events: Vec<String>,
    /// Whether events are delivered.
    pub is_active: bool,
    /// Owned by a Webhook custom resource: the REST API may not change or delete it.
    pub managed: bool,
    /// Why it was switched off other than by a change to it (a 410 from the target, every
    /// attempt failing for too long, its creator no longer an ADMIN), or null.
    pub disabled_reason: Option<String>,
    /// Since when every attempt to its target has failed (or since a change to it, if later),
    /// or null (the last one succeeded, none failed, or it was pointed elsewhere or switched on
    /// since). Past the worker's limit (72 hours by default) it is switched off.
    pub failing_since: Option<DateTime<Utc>>,
    /// The ADMIN who made it through the API, or last switched it on or pointed it elsewhere:
    /// it is switched off when they stop being an ADMIN of the organization. Null for the
    /// operator's webhooks and those made before this was recorded.
    pub created_by: Option<i64>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last changed.
    pub updated_at: DateTime<Utc>,
}

impl Webhook {
    /// Whether events of `event_type` go to this webhook.
    pub fn wants(&self, event_type: &str) -> bool {
        self.events.iter().any(|e| e == "*" || e == event_type)
    }
}

/// Where a webhook delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Not attempted yet.
    Pending,
    /// Attempted and failed; another attempt is scheduled.
    Retrying,
    /// The target answered 2xx.
    Delivered,
    /// Given up: attempts exhausted, or the target answered 410.
    Failed,
}

impl DeliveryStatus {
    /// The name stored in the database and shown in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Retrying => "retrying",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            DeliveryStatus::Pending,
            DeliveryStatus::Retrying,
            DeliveryStatus::Delivered,
            DeliveryStatus::Failed,
        ]
        .into_iter()
        .find(|d| d.as_str() == s)
    }
}

/// One event's delivery to one webhook, as the delivery log shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WebhookDelivery {
    /// Delivery id (also sent as `X-ChatBoard-Delivery`).
    pub id: i64,
    /// The event's id (the body's `id`).
    pub event_id: String,
    /// The event's type.
    pub event_type: String,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: i32,
    /// HTTP status of the last attempt, or null when it got no answer.
    pub last_status_code: Option<i32>,
    /// What went wrong in the last attempt, or null.
    pub last_error: Option<String>,
    /// When the next attempt is due, or null once settled.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When the event was queued for this webhook.
    pub created_at: DateTime<Utc>,
    /// When the target accepted it, or null.
    pub delivered_at: Option<DateTime<Utc>>,
}
