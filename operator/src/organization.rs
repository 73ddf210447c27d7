//! The Organization reconciler: the org row (name, quotas, suspension), its admins, and what
//! happens to the org when the resource goes.

use std::sync::atomic::AtomicBool;

use chat::validate::Validator;
use chat::{ChatError, ORG_NAME_MAX};
use chatboard_core::model::{is_valid_email, OrgQuotas};
use chatboard_store::ManagedOrg;
use chrono::Utc;
use crds::{DeletionPolicy, Organization, OrganizationSpec, OrganizationStatus};
use kube::runtime::controller::Action;

use crate::context::{resource_key, Context};
use crate::error::Result;
use crate::reconciler::{refuse, write_status, Reconciled};
use crate::status::Readiness;

impl Reconciled for Organization {
    const KIND: &'static str = "Organization";

    async fn apply(&self, ctx: &Context, invalid: &AtomicBool) -> Result<Action> {
        apply(self, ctx, invalid).await
    }

    async fn cleanup(&self, ctx: &Context) -> Result<Action> {
        cleanup(self, ctx).await
    }
}

/// Brings the database in line with the spec.
async fn apply(org: &Organization, ctx: &Context, invalid: &AtomicBool) -> Result<Action> {
    let key = resource_key(org)?;
    let spec = match checked_spec(&org.spec) {
        Ok(spec) => spec,
        Err(problem) => {
            // Nothing is applied from an invalid spec; the last good one stays in force.
            refuse(
                org,
                ctx,
                invalid,
                Readiness::not_ready("InvalidSpec", problem),
            )
            .await?;
            return Ok(Action::await_change());
        }
    };
    let now = Utc::now();
    let applied = ctx
        .store
        .apply_managed_org(
            ManagedOrg {
                resource_key: key.clone(),
                name: spec.name.clone(),
                quotas: spec.quotas,
                suspended: spec.suspended,
            },
            now,
        )
        .await?;
    if applied.created {
        ctx.event(
            org,
            false,
            "Created",
            format!("Organization {} is in place", applied.org_id),
        )
        .await;
        tracing::info!(resource = %key, org_id = applied.org_id, "organization in place");
    } else if applied.changed {
        ctx.event(
            org,
            false,
            "Updated",
            format!("Organization {} now matches the spec", applied.org_id),
        )
        .await;
        tracing::info!(resource = %key, org_id = applied.org_id, "organization corrected");
    }
    let done = ctx
        .chat
        .apply_org_admins(applied.org_id, &spec.name, &spec.admins)
        .await?;
    // One Event per reason, naming the addresses (as many as a note takes; the log has them
    // all): the recorder folds Events of one reason about one object into the first, keeping
    // its note, so one per address told of one only.
    if !(done.invited.is_empty() && done.kept_last.is_empty() && done.revoked.is_empty()) {
        tracing::info!(resource = %key, invited = ?done.invited, kept_last = ?done.kept_last, revoked = ?done.revoked, "organization admins applied");
    }
    if !done.invited.is_empty() {
        let note = format!(
            "{} not ADMIN yet; an ADMIN invitation was emailed to each",
            addresses_are(&done.invited)
        );
        ctx.event(org, false, "AdminInvited", note).await;
    }
    if !done.kept_last.is_empty() {
        let note = format!(
            "{} no longer listed but stays ADMIN: the organization has no other",
            addresses_are(&done.kept_last)
        );
        ctx.event(org, true, "LastAdminKept", note).await;
    }
    if !done.revoked.is_empty() {
        let note = format!(
            "{} no longer listed and not ADMIN any more",
            addresses_are(&done.revoked)
        );
        ctx.event(org, false, "AdminRevoked", note).await;
    }
    let readiness = Readiness::ready(ready_message(spec.suspended, &done.awaiting));
    let status = OrganizationStatus {
        org_id: Some(applied.org_id),
        member_count: Some(done.member_count),
        ..OrganizationStatus::default()
    };
    write_status(org, ctx, &readiness, Some(status)).await?;
    Ok(Action::requeue(ctx.settings.next_resync()))
}

/// "a@x is" or "a@x, b@y are": the subject of an Event's note about addresses.
fn addresses_are(emails: &[String]) -> String {
    let verb = if emails.len() == 1 { "is" } else { "are" };
    // As many as leave the note within what an Event takes; the rest counted (the operator
    // logs them all, and the Ready condition lists those yet to accept).
    let mut named = String::new();
    let mut shown = 0;
    for email in emails {
        if named.len() + email.len() + 2 > ADDRESSES_MAX {
            break;
        }
        if shown > 0 {
            named.push_str(", ");
        }
        named.push_str(email);
        shown += 1;
    }
    match emails.len() - shown {
        0 => format!("{named} {verb}"),
        more => format!("{named} and {more} more {verb}"),
    }
}

/// Room for addresses in an admin Event's note: the rest of its 1 KiB is its sentence.
const ADDRESSES_MAX: usize = crate::context::NOTE_MAX - 200;

/// The Ready condition's message: a suspension, and the listed admins who have not accepted
/// their ADMIN invitation yet (an organization none of them accepted has no ADMIN).
fn ready_message(suspended: bool, awaiting: &[String]) -> String {
    let mut parts = Vec::new();
    if suspended {
        parts.push("Suspended: members can read but not write".to_owned());
    }
    if !awaiting.is_empty() {
        parts.push(format!(
            "ADMIN invitation not accepted yet by {}",
            awaiting.join(", ")
        ));
    }
    parts.join("; ")
}

/// Archives or purges the org per `deletionPolicy`.
async fn cleanup(org: &Organization, ctx: &Context) -> Result<Action> {
    let key = resource_key(org)?;
    let (done, verb) = match org.spec.deletion_policy {
        DeletionPolicy::Retain => (
            ctx.store.archive_managed_org(&key, Utc::now()).await?,
            "archived",
        ),
        // One short transaction: the org, its rooms, seats and webhooks; the messages go
        // afterwards, a batch per transaction, outside the reconcile (see `chat`'s erasure).
        // Purged here a batch at a time, a large organization held a reconcile slot for as
        // long as its messages took.
        DeletionPolicy::Delete => (
            ctx.chat.purge_managed_org(&key).await?,
            "deleted with all its data",
        ),
    };
    if let Some(org_id) = done {
        tracing::info!(resource = %key, org_id, "organization {verb}");
        ctx.event(
            org,
            false,
            "Deleted",
            format!("Organization {org_id} {verb}"),
        )
        .await;
    }
    Ok(Action::await_change())
}

/// A spec after the checks the schema cannot make.
struct CheckedSpec {
    name: String,
    admins: Vec<String>,
    quotas: OrgQuotas,
    suspended: bool,
}

/// Checks a spec; the error says what is wrong, for the Ready condition.
fn checked_spec(spec: &OrganizationSpec) -> std::result::Result<CheckedSpec, String> {
    // The same rule as an organization name given over the API.
    let mut v = Validator::default();
    let name = v.text("spec.displayName", &spec.display_name, 1, ORG_NAME_MAX);
    if let Err(ChatError::Invalid(fields)) = v.finish() {
        let problems: Vec<String> = fields
            .iter()
            .map(|(field, problems)| format!("{field}: {}", problems.join(" ")))
            .collect();
        return Err(problems.join("; "));
    }
    let mut admins: Vec<String> = spec
        .admins
        .iter()
        .map(|a| a.trim().to_lowercase())
        .collect();
    let bad: Vec<&str> = admins
        .iter()
        .filter(|a| !is_valid_email(a))
        .map(String::as_str)
        .collect();
    if !bad.is_empty() {
        return Err(format!(
            "spec.admins has invalid email addresses: {}",
            bad.join(", ")
        ));
    }
    admins.sort();
    admins.dedup();
    let q = spec.quotas.clone().unwrap_or_default();
    let int = |field: &str, v: Option<u32>, max: u32| match v {
        Some(n) if n == 0 || n > max => Err(format!("spec.quotas.{field} must be 1 to {max}")),
        Some(n) => Ok(Some(n as i32)),
        None => Ok(None),
    };
    let bytes = |field: &str, v: Option<i64>| match v {
        Some(n) if n < 1 => Err(format!("spec.quotas.{field} must be at least 1")),
        other => Ok(other),
    };
    let quotas = OrgQuotas {
        max_members: int("maxMembers", q.max_members, 1_000_000)?,
        max_rooms: int("maxRooms", q.max_rooms, 1_000_000)?,
        upload_max_bytes: bytes("uploadMaxBytes", q.upload_max_bytes)?,
        upload_pending_bytes: bytes("uploadPendingBytes", q.upload_pending_bytes)?,
        upload_stored_bytes: bytes("uploadStoredBytes", q.upload_stored_bytes)?,
        retention_days: int("messageRetentionDays", q.message_retention_days, 36_500)?,
        rate_limit_per_minute: int("rateLimitPerMinute", q.rate_limit_per_minute, 100_000)?,
    };
    Ok(CheckedSpec {
        name,
        admins,
        quotas,
        suspended: spec.suspended,
    })
}
