//! An organization's webhooks (ADMIN only): registering them (the secret is shown once),
//! changing and deleting them, their delivery log, and test deliveries. Delivering is the
//! worker's job.

use chatboard_core::auth::new_secret_token;
use chatboard_core::error_code::ErrorCode;
use chatboard_core::events::EventType;
use chatboard_core::model::{Role, Webhook, WebhookDelivery};
use chatboard_core::webhook_target::{check_target, parse_target, TargetError};
use chatboard_store::{NewWebhook, WebhookPatch};
use chrono::Utc;
use tracing::instrument;

use crate::error::{ChatError, ChatResult};
use crate::validate::Validator;
use crate::Chat;

/// Webhooks one organization may have.
pub use chatboard_store::MAX_WEBHOOKS_PER_ORG;

/// A webhook as an ADMIN registers it, or the fields to change (`None` keeps a field).
#[derive(Debug, Clone, Default)]
pub struct WebhookDraft {
    /// http(s) target.
    pub url: Option<String>,
    /// Event type names, or `["*"]`.
    pub events: Option<Vec<String>>,
    /// Deliver or not.
    pub is_active: Option<bool>,
}

/// A registered webhook with its secret.
#[derive(Debug, Clone)]
pub struct WebhookCreated {
    /// The webhook.
    pub webhook: Webhook,
    /// The HMAC key of its signatures; it cannot be read back later.
    pub secret: String,
}

/// What the caller means to do with a webhook.
#[derive(PartialEq)]
enum Access {
    Read,
    /// Change it, or send through it: the organization must take changes.
    Write,
}

impl Chat {
    /// The organization's webhooks (ADMIN).
    pub async fn webhooks(&self, actor: i64, org_id: i64) -> ChatResult<Vec<Webhook>> {
        self.require_role(org_id, actor, Role::Admin).await?;
        Ok(self.store().webhooks_of_org(org_id).await?)
    }

    /// Registers a webhook (ADMIN); the answer carries its secret, shown only this once.
    #[instrument(skip(self, draft), err(level = "debug"))]
    pub async fn create_webhook(
        &self,
        actor: i64,
        org_id: i64,
        draft: WebhookDraft,
    ) -> ChatResult<WebhookCreated> {
        self.require_role_to_write(org_id, actor, Role::Admin)
            .await?;
        let mut v = Validator::default();
        let events = check_events(&mut v, draft.events.as_deref().unwrap_or_default());
        v.finish()?;
        let url = self
            .check_url(draft.url.as_deref().unwrap_or_default())
            .await?;
        let secret = format!("whsec_{}", new_secret_token());
        let webhook = self
            .store()
            .create_webhook(
                NewWebhook {
                    org_id,
                    url,
                    events,
                    secret: secret.clone(),
                    is_active: draft.is_active.unwrap_or(true),
                    managed: false,
                    max_attempts: None,
                    created_by: Some(actor),
                },
                Utc::now(),
            )
            .await?;
        tracing::info!(
            org_id,
            webhook_id = webhook.id,
            user_id = actor,
            "webhook created"
        );
        Ok(WebhookCreated { webhook, secret })
    }

    /// One webhook (ADMIN of its organization), without its secret.
    pub async fn webhook(&self, actor: i64, id: i64) -> ChatResult<Webhook> {
        self.admin_webhook(actor, id, Access::Read).await
    }

    /// Changes a webhook (ADMIN); operator-managed ones are refused.
    #[instrument(skip(self, draft), err(level = "debug"))]
    pub async fn update_webhook(
        &self,
        actor: i64,
        id: i64,
        draft: WebhookDraft,
    ) -> ChatResult<Webhook> {
        let hook = self.admin_webhook(actor, id, Access::Write).await?;
        // Refused as managed before its fields are looked at (a bad field said 400, where any
        // change to it is 409); the store refuses it again under its lock.
        if hook.managed {
            return Err(ChatError::refused(ErrorCode::ManagedByOperator));
        }
        let mut v = Validator::default();
        let events = draft.events.as_deref().map(|e| check_events(&mut v, e));
        v.finish()?;
        let url = match &draft.url {
            Some(raw) => Some(self.check_url(raw).await?),
            None => None,
        };
        let patch = WebhookPatch {
            url,
            events,
            is_active: draft.is_active,
            by: Some(actor),
        };
        Ok(self.store().update_webhook(id, patch, Utc::now()).await?)
    }

    /// Deletes a webhook with its delivery log (ADMIN); operator-managed ones are refused.
    #[instrument(skip(self), err(level = "debug"))]
    pub async fn delete_webhook(&self, actor: i64, id: i64) -> ChatResult<()> {
        self.admin_webhook(actor, id, Access::Write).await?;
        self.store().delete_webhook(id, Some(actor)).await?;
        tracing::info!(webhook_id = id, user_id = actor, "webhook deleted");
        Ok(())
    }

    /// The delivery log, newest first (ADMIN).
    pub async fn webhook_deliveries(
        &self,
        actor: i64,
        id: i64,
        before: Option<i64>,
        limit: u32,
    ) -> ChatResult<Vec<WebhookDelivery>> {
        self.admin_webhook(actor, id, Access::Read).await?;
        Ok(self.store().webhook_deliveries(id, before, limit).await?)
    }

    /// Queues a `webhook.test` delivery to this webhook (ADMIN); refused while it is off.
    /// Returns the delivery's id.
    #[instrument(skip(self), err(level = "debug"))]
    pub async fn test_webhook(&self, actor: i64, id: i64) -> ChatResult<i64> {
        let hook = self.admin_webhook(actor, id, Access::Write).await?;
        if !hook.is_active {
            return Err(ChatError::refused(ErrorCode::WebhookInactive));
        }
        Ok(self
            .store()
            .create_test_delivery(id, Some(actor), Utc::now())
            .await?)
    }

    /// The webhook, if the caller is an ADMIN of its organization.
    async fn admin_webhook(&self, actor: i64, id: i64, access: Access) -> ChatResult<Webhook> {
        let hook = self
            .store()
            .webhook(id)
            .await?
            .ok_or_else(ChatError::not_found)?;
        if access == Access::Write {
            self.require_role_to_write(hook.org, actor, Role::Admin)
                .await?;
        } else {
            self.require_role(hook.org, actor, Role::Admin).await?;
        }
        Ok(hook)
    }

    /// The target URL, parsed and checked against the SSRF rules. A host refused for where
    /// it resolves (or for not resolving) is refused in the same words whatever the reason:
    /// saying which name resolves, and to which private address, mapped the internal network
    /// (cluster services, the company's DNS) for anyone able to create an organization. The
    /// reason goes to the log.
    async fn check_url(&self, raw: &str) -> ChatResult<String> {
        let url = parse_target(raw).map_err(|e| ChatError::field("url", e.to_string()))?;
        if let Err(e) = check_target(&url, self.settings().allow_private_webhooks).await {
            return Err(match e {
                TargetError::Invalid(why) => ChatError::field("url", why),
                TargetError::Unresolvable(_) | TargetError::NotPublic { .. } => {
                    tracing::info!(reason = %e, "webhook target refused");
                    ChatError::field(
                        "url",
                        "The host is not a public internet address, or does not resolve."
                            .to_owned(),
                    )
                }
            });
        }
        Ok(url.to_string())
    }
}

/// The event filter, validated: known names or `*` (which alone means all), no repeats.
fn check_events(v: &mut Validator, events: &[String]) -> Vec<String> {
    if events.is_empty() {
        v.add("events", "Name at least one event type, or \"*\" for all.");
        return Vec::new();
    }
    let mut out: Vec<String> = Vec::new();
    for name in events {
        let name = name.trim();
        if name != "*" && EventType::parse(name).is_none() {
            v.add("events", format!("Unknown event type {name:?}."));
        } else if !out.iter().any(|e| e == name) {
            out.push(name.to_owned());
        }
    }
    if out.iter().any(|e| e == "*") {
        return vec!["*".to_owned()];
    }
    out
}
