//! The operator's actions on tenants: an Organization resource's admins, and deleting the
//! organization a resource owned. (Its name, quotas and suspension, and its webhooks, change no
//! seat and need no announcement: the operator writes those through the store directly.)

use chatboard_core::model::Role;
use chatboard_store::{AppliedAdmins, SpecAdmin};
use chrono::{DateTime, Utc};
use tracing::instrument;

use crate::error::ChatResult;
use crate::orgs::new_invitation_token;
use crate::Chat;

/// What applying an Organization's admin list did.
pub type AdminsApplied = AppliedAdmins;

impl Chat {
    /// Invites by email every listed address that is not ADMIN yet (accepting makes it one,
    /// members included) and takes back what the list gave from addresses no longer on it.
    /// Seats that go with it are announced, so open sockets follow.
    #[instrument(skip(self, admins), err(level = "debug"))]
    pub async fn apply_org_admins(
        &self,
        org_id: i64,
        org_name: &str,
        admins: &[String],
    ) -> ChatResult<AdminsApplied> {
        let now = Utc::now();
        let admins = admins
            .iter()
            .map(|email| self.spec_admin(org_name, email, now))
            .collect();
        let done = self.store().apply_org_admins(org_id, admins, now).await?;
        self.announcer().seats_lost(&done.seats_lost).await;
        Ok(done)
    }

    /// Deletes the organization `resource_key` owned, with everything in it; its id, if there
    /// was one. Every open socket stops following its rooms.
    #[instrument(skip(self), err(level = "debug"))]
    pub async fn purge_managed_org(&self, resource_key: &str) -> ChatResult<Option<i64>> {
        let Some((org_id, rooms)) = self.store().purge_managed_org(resource_key).await? else {
            return Ok(None);
        };
        self.purge_erased_soon();
        self.announcer().rooms_deleted(rooms).await;
        Ok(Some(org_id))
    }

    /// An admin with the invitation to send should they not be ADMIN yet.
    fn spec_admin(&self, org_name: &str, email: &str, now: DateTime<Utc>) -> SpecAdmin {
        let (token, token_hash) = new_invitation_token();
        let expires_at = now + self.settings().invites.invite_ttl;
        let email_message = self.invitation_email(
            email,
            &format!(
                "Your platform team made you an {} of {org_name} on ChatBoard.",
                Role::Admin.as_str()
            ),
            format!("You are an admin of {org_name} on ChatBoard"),
            &token,
            expires_at,
        );
        SpecAdmin {
            email: email.to_owned(),
            token_hash,
            expires_at,
            email_message,
        }
    }
}
