//! Upload quotas: bytes per user and per organization, checked when an upload is presigned
//! and when it is first posted in an organization.

use chatboard_core::error_code::ErrorCode;
use chatboard_core::model::{OrgQuotas, Upload};
use chatboard_store::{NewUpload, OrgCharge, QuotaExceeded, UploadQuota};
use chrono::Utc;
use tracing::instrument;

use crate::error::{ChatError, ChatResult};
use crate::Chat;

impl Chat {
    /// Records a presigned upload within the uploader's quotas and, when `upload.org_id` names
    /// one, within that organization's (404 when the uploader is not in it, 403 while it is
    /// suspended or archived, 413 above its largest attachment).
    #[instrument(skip(self, upload), fields(owner = upload.owner_id, size = upload.size), err(level = "debug"))]
    pub async fn reserve_upload(&self, upload: NewUpload) -> ChatResult<Upload> {
        if let Some(org_id) = upload.org_id {
            let org = self.org_view(org_id, upload.owner_id).await?;
            if !org.writable() {
                let code = if org.archived {
                    ErrorCode::OrgArchived
                } else {
                    ErrorCode::OrgSuspended
                };
                return Err(ChatError::refused(code));
            }
            // Refused now, as a post of it there would be: charged to the organization, it
            // could neither be posted anywhere nor given up.
            within_org_upload_max(&org.quotas, upload.size)?;
        }
        let size = upload.size;
        self.store()
            .create_upload(upload, &self.settings().upload_quotas, Utc::now())
            .await?
            .map_err(|exceeded| quota_error(exceeded, size))
    }

    /// Makes a file posted in `org_id` count against it, unless it already does; refused when
    /// it counts against another organization or does not fit this one's quota. `true` when
    /// this call charged it, so that a post refused later can give the charge back.
    pub(crate) async fn charge_upload(
        &self,
        upload_id: &str,
        org_id: i64,
        size: i64,
    ) -> ChatResult<bool> {
        let quotas = &self.settings().upload_quotas;
        match self
            .store()
            .charge_upload_to_org(upload_id, org_id, quotas)
            .await?
        {
            OrgCharge::Charged => Ok(true),
            OrgCharge::AlreadyCharged => Ok(false),
            OrgCharge::OtherOrg => Err(ChatError::field(
                "file_id",
                "This file was uploaded for another organization.",
            )),
            OrgCharge::Exceeded(exceeded) => Err(quota_error(exceeded, size)),
        }
    }
}

/// An upload this post charged to an organization, given back if the post is refused.
pub(crate) struct UploadCharge {
    /// The upload.
    pub(crate) upload_id: String,
    /// The organization it was charged to.
    pub(crate) org_id: i64,
}

impl Chat {
    /// Makes sure a file a stored message carries still counts against the organization an
    /// earlier post charged it to: that post may have failed and given the charge back while
    /// this one waited for its commit. A failure is only logged.
    pub(crate) async fn keep_upload_charged(&self, charge: UploadCharge) {
        let UploadCharge { upload_id, org_id } = charge;
        // Nearly always still charged: one read, no lock.
        if let Ok(Some(upload)) = self.store().upload(&upload_id).await {
            if upload.org_id.is_some() {
                return;
            }
        }
        let quotas = &self.settings().upload_quotas;
        match self
            .store()
            .charge_upload_to_org(&upload_id, org_id, quotas)
            .await
        {
            Ok(OrgCharge::Charged | OrgCharge::AlreadyCharged) => {}
            Ok(other) => {
                tracing::warn!(upload_id, org_id, outcome = ?other, "a posted file could not be charged again")
            }
            Err(err) => {
                tracing::warn!(upload_id, org_id, error = %err, "a posted file could not be charged again")
            }
        }
    }

    /// Gives a charge back after its post was refused, so that the file can still be posted
    /// elsewhere; a failure only leaves the file counted where it was (logged).
    pub(crate) async fn release_upload_charge(&self, charge: UploadCharge) {
        let UploadCharge { upload_id, org_id } = charge;
        if let Err(err) = self.store().release_org_charge(&upload_id, org_id).await {
            tracing::warn!(upload_id, org_id, error = %err, "could not give an upload's charge back");
        }
    }
}

/// 413 `file_too_large` for a file that could never fit the quota, else 409
/// `upload_quota_exceeded` saying which quota and how much of it is used.
fn quota_error(exceeded: QuotaExceeded, size: i64) -> ChatError {
    let QuotaExceeded { quota, limit, used } = exceeded;
    let whose = match quota {
        UploadQuota::UserPending => "your unfinished uploads",
        UploadQuota::UserStored => "your uploads",
        UploadQuota::OrgPending => "this organization's unfinished uploads",
        UploadQuota::OrgStored => "this organization's uploads",
    };
    if size > limit {
        return ChatError::refused_because(
            ErrorCode::FileTooLarge,
            format!("The file has {size} bytes; {whose} may hold at most {limit}."),
        );
    }
    ChatError::refused_because(
        ErrorCode::UploadQuotaExceeded,
        format!(
            "The quota of {whose} is {limit} bytes, {used} are used and the file has {size}: \
             finish or let expire other uploads first."
        ),
    )
}

/// 413 when `size` is over the organization's largest attachment (`quotas.upload_max_bytes`).
pub(crate) fn within_org_upload_max(quotas: &OrgQuotas, size: i64) -> ChatResult<()> {
    match quotas.upload_max_bytes {
        Some(max) if size > max => Err(ChatError::refused_because(
            ErrorCode::FileTooLarge,
            format!("This organization accepts attachments of at most {max} bytes."),
        )),
        _ => Ok(()),
    }
}
