//! What both controllers share: the finalizer around apply and cleanup, metrics and backoff per
//! reconcile, and a status write that happens only when the status changed.

use std::fmt::Debug;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crds::Conditioned;
use k8s_openapi::NamespaceResourceScope;
use kube::api::{Patch, PatchParams};
use kube::core::object::HasStatus;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{finalizer, Error as FinalizerError, Event as Finalize};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;

use crate::context::{namespace_of, resource_key, Context};
use crate::error::{Error, Result};
use crate::status::{with_ready, Readiness};

/// The finalizer both kinds carry until the database has been cleaned up.
pub const FINALIZER: &str = "chatboard.io/cleanup";

/// A custom resource the operator reconciles into the database.
pub trait Reconciled:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + HasStatus<Status: Conditioned + Clone + Default + PartialEq + Serialize + Send + Sync>
    + Clone
    + Debug
    + DeserializeOwned
    + Serialize
    + Send
    + Sync
    + 'static
{
    /// Kind label in metrics and logs.
    const KIND: &'static str;
    /// Brings the database in line with the spec; sets `invalid` when the spec cannot apply.
    fn apply(
        &self,
        ctx: &Context,
        invalid: &AtomicBool,
    ) -> impl Future<Output = Result<Action>> + Send;
    /// Undoes what the resource made, before its finalizer is released.
    fn cleanup(&self, ctx: &Context) -> impl Future<Output = Result<Action>> + Send;
}

/// Reconciles one resource (the controllers call this).
#[tracing::instrument(skip_all, fields(kind = K::KIND, name = %obj.name_any(), namespace = ?obj.namespace()))]
pub async fn reconcile<K: Reconciled>(obj: Arc<K>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    let key = resource_key(&*obj)?;
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &namespace_of(&*obj)?);
    let invalid = AtomicBool::new(false);
    let target = obj.clone();
    let outcome = finalizer(&api, FINALIZER, obj, |event| async {
        match event {
            Finalize::Apply(obj) => obj.apply(&ctx, &invalid).await,
            Finalize::Cleanup(obj) => {
                let action = obj.cleanup(&ctx).await?;
                ctx.metrics.set_ready(K::KIND, &key, None);
                Ok(action)
            }
        }
    })
    .await
    .map_err(|e| match e {
        FinalizerError::ApplyFailed(e) | FinalizerError::CleanupFailed(e) => e,
        other => Error::Finalizer(other.to_string()),
    });
    let result = match &outcome {
        Err(_) => "error",
        Ok(_) if invalid.load(Ordering::Relaxed) => "invalid",
        Ok(_) => "ok",
    };
    if let Err(error) = &outcome {
        report_failure(&*target, &ctx, error).await;
    }
    if outcome.is_ok() {
        ctx.succeeded(K::KIND, &key);
    }
    ctx.metrics.reconciled(K::KIND, result, started.elapsed());
    outcome
}

/// Shows a failed reconcile in the resource's status (`Ready=False`, `ReconcileError`), so
/// that `kubectl get` does not go on saying Ready while nothing is applied. The message names
/// only what failed, never the error's details: it must read the same at each failure, or each
/// status write (itself a change) would start the next reconcile at once, beside the backoff.
/// A resource being deleted keeps its status; a write that fails too is only logged.
async fn report_failure<K: Reconciled>(obj: &K, ctx: &Context, error: &Error) {
    if obj.meta().deletion_timestamp.is_some() {
        return;
    }
    let what = match error {
        Error::Store(
            chatboard_store::StoreError::Unavailable(_)
            | chatboard_store::StoreError::Database(_)
            | chatboard_store::StoreError::Sqlite(_)
            | chatboard_store::StoreError::Migrate(_),
        ) => "the database failed or could not be reached",
        Error::Store(_) => "the database refused the change",
        Error::Chat(_) => "applying the admins to the organization failed",
        Error::Kube(_) | Error::Finalizer(_) => "the Kubernetes API failed",
        Error::Resolve(_) => "the webhook target's name could not be resolved",
        Error::Unnamed(_) => "the resource has no name or namespace",
    };
    let readiness = Readiness::not_ready(
        "ReconcileError",
        format!("{what}; retrying (see the operator's log)"),
    );
    if let Err(e) = write_status(obj, ctx, &readiness, None).await {
        tracing::debug!(error = %e, "could not show the failure in the status");
    }
}

/// What to do after a failed reconcile: try again, later each time.
pub fn error_policy<K: Reconciled>(obj: Arc<K>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = resource_key(&*obj).unwrap_or_default();
    let delay = ctx.backoff(K::KIND, &key);
    tracing::warn!(kind = K::KIND, resource = %key, error = %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// Writes the status when it differs from what is there; says whether it did. `status` carries
/// the fields besides the conditions (`None`: keep them).
pub async fn write_status<K: Reconciled>(
    obj: &K,
    ctx: &Context,
    readiness: &Readiness,
    status: Option<K::Status>,
) -> Result<bool> {
    ctx.metrics
        .set_ready(K::KIND, &resource_key(obj)?, Some(readiness.ready));
    let current = obj.status().cloned().unwrap_or_default();
    let generation = obj.meta().generation;
    let mut next = status.unwrap_or_else(|| current.clone());
    next.stamp(
        generation,
        with_ready(current.conditions(), readiness, generation),
    );
    if next == current {
        return Ok(false);
    }
    ctx.own_status.note(K::KIND, &resource_key(obj)?, &next);
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &namespace_of(obj)?);
    api.patch_status(
        &obj.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status_patch(&current, &next) })),
    )
    .await?;
    Ok(true)
}

/// `next` as a merge patch over `current`: a field `next` leaves out (an unset `Option` is not
/// serialized) is sent as `null`, which removes it; left out of the patch, it would stay as it
/// was, and every later reconcile would find the status different and patch it again.
fn status_patch<S: serde::Serialize>(current: &S, next: &S) -> serde_json::Value {
    let mut patch = json!(next);
    null_what_went(&mut patch, &json!(current));
    patch
}

/// Sets to `null`, in `next`, each field of `before` that it lacks, in nested objects too: a
/// merge patch merges objects field by field, so a webhook's `lastDelivery` kept the status
/// code of an earlier delivery under a newer one that had none.
fn null_what_went(next: &mut serde_json::Value, before: &serde_json::Value) {
    if let (serde_json::Value::Object(fields), serde_json::Value::Object(before)) = (next, before) {
        for (name, old) in before {
            match fields.get_mut(name) {
                Some(new) => null_what_went(new, old),
                None => {
                    fields.insert(name.clone(), serde_json::Value::Null);
                }
            }
        }
    }
}

/// Not Ready for a spec that cannot apply: status, and a Warning Event the first time.
pub async fn refuse<K: Reconciled>(
    obj: &K,
    ctx: &Context,
    invalid: &AtomicBool,
    readiness: Readiness,
) -> Result<()> {
    refuse_with(obj, ctx, invalid, readiness, None).await
}

/// As [`refuse`], with the status's other fields as `status` says (`None`: kept).
pub async fn refuse_with<K: Reconciled>(
    obj: &K,
    ctx: &Context,
    invalid: &AtomicBool,
    readiness: Readiness,
    status: Option<K::Status>,
) -> Result<()> {
    invalid.store(true, Ordering::Relaxed);
    if write_status(obj, ctx, &readiness, status).await? {
        ctx.event(obj, true, readiness.reason, readiness.message.clone())
            .await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests fail loudly by design

    use serde_json::json;

    use super::status_patch;

    /// The patch, applied as the API server applies a merge patch, gives the new status whole:
    /// fields gone from nested objects go too.
    #[test]
    fn a_status_patch_leaves_nothing_of_the_old_status_behind() {
        let current = json!({
            "webhookId": 7,
            "lastDelivery": {"status": "delivered", "statusCode": 200, "at": "2026-12-06T10:00:00Z"},
            "conditions": [{"type": "Ready", "status": "True"}],
        });
        let next = json!({
            "lastDelivery": {"status": "pending"},
            "conditions": [{"type": "Ready", "status": "False"}],
        });
        let mut applied = current.clone();
        json_patch::merge(&mut applied, &status_patch(&current, &next));
        assert_eq!(applied, next);
    }
}
