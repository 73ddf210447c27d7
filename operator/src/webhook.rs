//! The Webhook reconciler: the webhook row of its Organization's org, its signing secret (read
//! from the referenced Secret, or from one the operator creates and owns), and its newest
//! delivery in the status.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use chatboard_core::auth::new_secret_token;
use chatboard_core::error_code::ErrorCode;
use chatboard_core::webhook_target::{check_target, parse_target, TargetError};
use chatboard_store::{ManagedWebhook, StoreError, MAX_WEBHOOKS_PER_ORG};
use chrono::{SecondsFormat, Utc};
use crds::{LastDelivery, Webhook, WebhookStatus};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{ObjectMeta, PostParams};
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};

use crate::context::{namespace_of, resource_key, Context};
use crate::error::{Error, Result};
use crate::reconciler::{refuse, refuse_with, write_status, Reconciled};
use crate::status::Readiness;

/// The key of the HMAC secret in a Secret the operator creates.
pub const SECRET_KEY: &str = "secret";
/// Label on the Secrets the operator creates (the controller watches only these).
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "chatboard-operator");
/// Longest name of a Secret (a DNS subdomain).
const SECRET_NAME_MAX: usize = 253;
/// Shortest HMAC secret accepted from a referenced Secret.
const SECRET_MIN: usize = 16;
/// Longest HMAC secret accepted.
const SECRET_MAX: usize = 1024;

/// The name of the Secret the operator creates for a webhook without `secretRef`.
pub fn owned_secret_name(webhook_name: &str) -> String {
    format!("{webhook_name}-hmac")
}

/// The outcome of a step that may find the spec unusable for now.
enum Step<T> {
    Go(T),
    /// Not Ready for this reason; look again after the given time (`None`: on change only).
    Stop(Readiness, Option<Duration>),
}

impl Reconciled for Webhook {
    const KIND: &'static str = "Webhook";

    async fn apply(&self, ctx: &Context, invalid: &AtomicBool) -> Result<Action> {
        apply(self, ctx, invalid).await
    }

    async fn cleanup(&self, ctx: &Context) -> Result<Action> {
        cleanup(self, ctx).await
    }
}

/// Whatever else keeps the spec from being applied, being switched off is applied: it is how a
/// target gone bad (or a leaked secret) is stopped at once.
async fn switch_off_if_asked(hook: &Webhook, ctx: &Context, key: &str) -> Result<()> {
    if hook.spec.active {
        return Ok(());
    }
    if let Some(id) = ctx
        .store
        .switch_off_managed_webhook(key, Utc::now())
        .await?
    {
        ctx.event(
            hook,
            false,
            "Deactivated",
            format!("Webhook {id} is switched off; the rest of the spec is not applied yet"),
        )
        .await;
        tracing::info!(resource = %key, webhook_id = id, "webhook switched off");
    }
    Ok(())
}

/// Brings the database in line with the spec; `invalid` is set when the spec cannot be applied.
async fn apply(hook: &Webhook, ctx: &Context, invalid: &AtomicBool) -> Result<Action> {
    let key = resource_key(hook)?;
    let prepared = match prepare(hook, ctx).await? {
        Step::Go(prepared) => prepared,
        Step::Stop(readiness, recheck) => {
            switch_off_if_asked(hook, ctx, &key).await?;
            // A webhook the status names that is gone (with its organization, purged) is
            // named no more, nor is its last delivery.
            let shown = hook.status.as_ref().and_then(|s| s.webhook_id);
            let gone = match shown {
                Some(_) => ctx.store.managed_webhook_id(&key).await?.is_none(),
                None => false,
            };
            let status = gone.then(WebhookStatus::default);
            refuse_with(hook, ctx, invalid, readiness, status).await?;
            return Ok(recheck.map_or_else(Action::await_change, Action::requeue));
        }
    };
    let now = Utc::now();
    let applied = match ctx.store.apply_managed_webhook(prepared, now).await {
        Ok(applied) => applied,
        // Room may be made (a webhook deleted): looked at again, as a missing Secret is.
        Err(StoreError::Conflict(ErrorCode::TooManyWebhooks)) => {
            // The move to a full Organization is refused as a whole; switching off is not.
            switch_off_if_asked(hook, ctx, &key).await?;
            let message = format!(
                "the Organization already has {MAX_WEBHOOKS_PER_ORG} webhooks, the most it may have"
            );
            refuse(
                hook,
                ctx,
                invalid,
                Readiness::not_ready("TooManyWebhooks", message),
            )
            .await?;
            return Ok(Action::requeue(ctx.settings.recheck));
        }
        Err(e) => return Err(e.into()),
    };
    if applied.created {
        ctx.event(
            hook,
            false,
            "Created",
            format!("Webhook {} is in place", applied.webhook_id),
        )
        .await;
        tracing::info!(resource = %key, webhook_id = applied.webhook_id, "webhook in place");
    } else if applied.changed {
        ctx.event(
            hook,
            false,
            "Updated",
            format!("Webhook {} now matches the spec", applied.webhook_id),
        )
        .await;
        tracing::info!(resource = %key, webhook_id = applied.webhook_id, "webhook corrected");
    }
    let newest = ctx
        .store
        .webhook_deliveries(applied.webhook_id, None, 1)
        .await?;
    let last_delivery = newest.first().map(|d| LastDelivery {
        status: d.status.as_str().to_owned(),
        status_code: d.last_status_code,
        at: Some(
            d.delivered_at
                .unwrap_or(d.created_at)
                .to_rfc3339_opts(SecondsFormat::Secs, true),
        ),
    });
    // A newer delivery is shown at most once per `recheck` (see `Context::delivery_wait`);
    // meanwhile the status keeps the one it shows, and the Webhook is looked at again then.
    let shown = hook.status.as_ref().and_then(|s| s.last_delivery.clone());
    let mut wait = None;
    let last_delivery = if last_delivery == shown {
        last_delivery
    } else if let Some(left) = ctx.delivery_wait(&key) {
        wait = Some(left);
        shown
    } else {
        ctx.delivery_shown(&key, true);
        last_delivery
    };
    let readiness = match &applied.disabled_reason {
        Some(reason) => Readiness::not_ready(
            "DisabledByTarget",
            // The operator must see `active` false: two edits it never saw apart count as none.
            format!("{reason}; to deliver again change the URL, or set active to false and, once this condition says Inactive, back to true"),
        ),
        None if !hook.spec.active => Readiness::ready("Inactive: events are not delivered"),
        None => Readiness::ready(""),
    };
    let status = WebhookStatus {
        webhook_id: Some(applied.webhook_id),
        last_delivery,
        ..WebhookStatus::default()
    };
    write_status(hook, ctx, &readiness, Some(status)).await?;
    let resync = ctx.settings.next_resync();
    Ok(Action::requeue(
        wait.map_or(resync, |left| left.min(resync)),
    ))
}

/// Everything the database row needs, or why it cannot be written yet.
async fn prepare(hook: &Webhook, ctx: &Context) -> Result<Step<ManagedWebhook>> {
    let spec = &hook.spec;
    let namespace = namespace_of(hook)?;
    let url = match parse_target(&spec.url) {
        Ok(url) => url,
        Err(e) => {
            return Ok(Step::Stop(
                Readiness::not_ready("InvalidURL", format!("spec.url: {e}")),
                None,
            ))
        }
    };
    match check_target(&url, ctx.settings.allow_private_webhooks).await {
        Ok(()) => {}
        Err(e @ TargetError::Unresolvable(_)) => {
            return Ok(Step::Stop(
                Readiness::not_ready("UnresolvableURL", e.to_string()),
                Some(ctx.settings.recheck),
            ));
        }
        // What a name resolves to can change (a record fixed, split-horizon DNS): looked at
        // again, as an unresolvable name is.
        Err(e @ TargetError::NotPublic { .. }) => {
            return Ok(Step::Stop(
                Readiness::not_ready("InvalidURL", format!("spec.url: {e}")),
                Some(ctx.settings.recheck),
            ));
        }
        Err(e) => {
            return Ok(Step::Stop(
                Readiness::not_ready("InvalidURL", format!("spec.url: {e}")),
                None,
            ))
        }
    }
    if let Some(n) = spec.max_attempts.filter(|n| !(1..=20).contains(n)) {
        return Ok(Step::Stop(
            Readiness::not_ready(
                "InvalidSpec",
                format!("spec.maxAttempts is {n}; it must be 1 to 20"),
            ),
            None,
        ));
    }
    let mut events: Vec<String> = spec
        .events
        .iter()
        .filter_map(|e| {
            serde_json::to_value(e)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
        })
        .collect();
    events.sort();
    events.dedup();
    if events.is_empty() {
        return Ok(Step::Stop(
            Readiness::not_ready(
                "InvalidSpec",
                "spec.events must name at least one event type",
            ),
            None,
        ));
    }
    if events.iter().any(|e| e == "*") {
        events = vec!["*".to_owned()];
    }
    let org_key = format!("{namespace}/{}", spec.organization_ref.name);
    let org_id = match ctx.store.managed_org(&org_key).await? {
        Some(org) if !org.archived => org.org_id,
        // Its webhooks stay as they were (an archived org's members may still leave, and its
        // ADMIN delete it): they are said to be, not "not in place".
        Some(_) => {
            let message = format!(
                "Organization {} is archived (its resource was deleted with deletionPolicy Retain): \
                 a webhook this resource made stays as it was, delivering, until an Organization of \
                 that name takes the org back; set active to false to stop it",
                spec.organization_ref.name
            );
            return Ok(Step::Stop(
                Readiness::not_ready("OrganizationArchived", message),
                Some(ctx.settings.recheck),
            ));
        }
        None => {
            let message = format!(
                "Organization {} is not (yet) in place in namespace {namespace}",
                spec.organization_ref.name
            );
            return Ok(Step::Stop(
                Readiness::not_ready("OrganizationNotFound", message),
                Some(ctx.settings.recheck),
            ));
        }
    };
    let secret = match signing_secret(hook, ctx, &namespace).await? {
        Step::Go(secret) => secret,
        Step::Stop(readiness, recheck) => return Ok(Step::Stop(readiness, recheck)),
    };
    Ok(Step::Go(ManagedWebhook {
        resource_key: resource_key(hook)?,
        org_id,
        url: url.to_string(),
        events,
        secret,
        active: spec.active,
        max_attempts: spec.max_attempts,
    }))
}

/// The HMAC secret: from `secretRef`, or from the Secret the operator owns (created here when
/// missing). A value changed in either is picked up on the next reconcile (at once for owned
/// Secrets, which are watched).
async fn signing_secret(hook: &Webhook, ctx: &Context, namespace: &str) -> Result<Step<String>> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    if let Some(reference) = &hook.spec.secret_ref {
        let Some(secret) = secrets.get_opt(&reference.name).await? else {
            let message = format!("Secret {} not found", reference.name);
            return Ok(Step::Stop(
                Readiness::not_ready("SecretNotFound", message),
                Some(ctx.settings.recheck),
            ));
        };
        return Ok(match secret_value(&secret, &reference.key) {
            Ok(value) => Step::Go(value),
            Err(problem) => Step::Stop(
                Readiness::not_ready(
                    "InvalidSecret",
                    format!("Secret {} {problem}", reference.name),
                ),
                Some(ctx.settings.recheck),
            ),
        });
    }
    let name = owned_secret_name(&hook.name_any());
    if name.len() > SECRET_NAME_MAX {
        // The API server would refuse the Secret (422) at every retry, with nothing said.
        return Ok(Step::Stop(
            Readiness::not_ready(
                "InvalidSpec",
                format!(
                    "the Webhook's name is too long for the signing Secret the operator makes \
                     ({name} is over {SECRET_NAME_MAX} characters): use a shorter name, or spec.secretRef"
                ),
            ),
            None,
        ));
    }
    let uid = hook.meta().uid.clone().unwrap_or_default();
    if let Some(secret) = secrets.get_opt(&name).await? {
        let owned = secret.owner_references().iter().any(|o| o.uid == uid);
        if !owned {
            let message = format!(
                "Secret {name} exists and does not belong to this Webhook; name it in spec.secretRef to use it"
            );
            return Ok(Step::Stop(
                Readiness::not_ready("SecretConflict", message),
                Some(ctx.settings.recheck),
            ));
        }
        return Ok(match secret_value(&secret, SECRET_KEY) {
            Ok(value) => Step::Go(value),
            Err(problem) => Step::Stop(
                Readiness::not_ready(
                    "InvalidSecret",
                    format!("Secret {name} {problem}; delete it to have a new one made"),
                ),
                Some(ctx.settings.recheck),
            ),
        });
    }
    let value = format!("whsec_{}", new_secret_token());
    let mut owner = hook
        .controller_owner_ref(&())
        .ok_or(Error::Unnamed("uid"))?;
    // A foreground deletion of the Webhook then waits for its Secret, so a Webhook made again
    // under the same name does not find the old one in its way (`SecretConflict`).
    owner.block_owner_deletion = Some(true);
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([(
                MANAGED_BY.0.to_owned(),
                MANAGED_BY.1.to_owned(),
            )])),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(
            SECRET_KEY.to_owned(),
            ByteString(value.clone().into_bytes()),
        )])),
        ..Secret::default()
    };
    secrets.create(&PostParams::default(), &secret).await?;
    ctx.event(
        hook,
        false,
        "SecretCreated",
        format!("Created Secret {name} with the signing key (key `{SECRET_KEY}`)"),
    )
    .await;
    Ok(Step::Go(value))
}

/// The secret under `key`, checked.
fn secret_value(secret: &Secret, key: &str) -> std::result::Result<String, String> {
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| b.0.clone())
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|d| d.get(key))
                .map(|s| s.clone().into_bytes())
        })
        .ok_or_else(|| format!("has no key `{key}`"))?;
    let value = String::from_utf8(bytes).map_err(|_| format!("key `{key}` is not UTF-8 text"))?;
    let value = value.trim().to_owned();
    if value.len() < SECRET_MIN || value.len() > SECRET_MAX {
        return Err(format!(
            "key `{key}` must hold {SECRET_MIN} to {SECRET_MAX} bytes"
        ));
    }
    Ok(value)
}

/// Removes the webhook from the database; an owned Secret goes with the resource (owner
/// reference).
async fn cleanup(hook: &Webhook, ctx: &Context) -> Result<Action> {
    let key = resource_key(hook)?;
    ctx.delivery_shown(&key, false);
    if let Some(id) = ctx.store.remove_managed_webhook(&key).await? {
        tracing::info!(resource = %key, webhook_id = id, "webhook removed");
        ctx.event(hook, false, "Deleted", format!("Webhook {id} removed"))
            .await;
    }
    Ok(Action::await_change())
}
