//! Authorization: who may see and change what.
//!
//! Visibility follows the organization: someone outside an object's organization gets 404 for
//! it, exactly as if it did not exist. Inside, reading a room needs a seat in it; managing it
//! needs to be its creator sitting in it or an org ADMIN (who may manage a room without sitting
//! in it), and a direct message's two people are answered as its creator is (what they may not
//! do to it is refused as `dm_immutable`); org actions need a role, and a member below it gets 403. Writes to a suspended or
//! archived organization are refused with `org_suspended` / `org_archived`.

use chatboard_core::error_code::ErrorCode;
use chatboard_core::model::{OrgView, Role};
use chatboard_store::RoomAccess;

use crate::error::{ChatError, ChatResult};
use crate::Chat;

impl Chat {
    /// The room as `user_id` may act on it; 404 when it does not exist or is in another org.
    pub async fn room_access(&self, room_id: i64, user_id: i64) -> ChatResult<RoomAccess> {
        self.store()
            .room_access(room_id, user_id)
            .await?
            .ok_or_else(ChatError::not_found)
    }

    /// The room, for someone with a seat in it; 404 otherwise.
    pub async fn member_access(&self, room_id: i64, user_id: i64) -> ChatResult<RoomAccess> {
        let access = self.room_access(room_id, user_id).await?;
        if !access.is_member {
            return Err(ChatError::not_found());
        }
        Ok(access)
    }

    /// The room, for its creator, an org ADMIN or one of a direct message's two people: 404 for
    /// those who cannot see it, 403 for members who may not manage it.
    pub(crate) async fn manager_access(
        &self,
        room_id: i64,
        user_id: i64,
    ) -> ChatResult<RoomAccess> {
        let access = self.room_access(room_id, user_id).await?;
        // A creator manages the room while they sit in it: a seat lost with a role (a MANAGER
        // demoted out of a MANAGER_ONLY room) or with the organization takes the rights along.
        let creates = access.room.created_by == Some(user_id) && access.is_member;
        // A direct message's two people are answered alike, whichever opened it: what they may
        // not do to it is refused for its being a direct message (409), not for who asks.
        let in_dm = access.room.is_dm && access.is_member;
        let manages = access.org_role == Role::Admin || creates || in_dm;
        match (manages, access.is_member) {
            (true, _) => Ok(access),
            (false, true) => Err(ChatError::denied(
                "Only the room's creator or an organization ADMIN may do this.",
            )),
            (false, false) => Err(ChatError::not_found()),
        }
    }

    /// `user_id`'s role in `org_id`; 404 when not a member.
    pub async fn org_role(&self, org_id: i64, user_id: i64) -> ChatResult<Role> {
        self.store()
            .member_role(org_id, user_id)
            .await?
            .ok_or_else(ChatError::not_found)
    }

    /// The organization as `user_id` sees it; 404 when not a member.
    pub async fn org_view(&self, org_id: i64, user_id: i64) -> ChatResult<OrgView> {
        self.store()
            .org_for_member(org_id, user_id)
            .await?
            .ok_or_else(ChatError::not_found)
    }

    /// `user_id`'s role in `org_id`: 404 when not a member, 403 when below `needed`.
    pub async fn require_role(&self, org_id: i64, user_id: i64, needed: Role) -> ChatResult<Role> {
        at_least(self.org_role(org_id, user_id).await?, needed)
    }

    /// As [`Chat::require_role`], for a change: also refused while the organization is
    /// suspended or archived. Returns the organization as the actor sees it.
    pub async fn require_role_to_write(
        &self,
        org_id: i64,
        user_id: i64,
        needed: Role,
    ) -> ChatResult<OrgView> {
        let org = self.org_view(org_id, user_id).await?;
        at_least(org.role, needed)?;
        match (org.archived, org.suspended) {
            (true, _) => Err(ChatError::refused(ErrorCode::OrgArchived)),
            (false, true) => Err(ChatError::refused(ErrorCode::OrgSuspended)),
            (false, false) => Ok(org),
        }
    }
}

/// Refused when the room's organization is suspended or archived.
pub(crate) fn writable(access: &RoomAccess) -> ChatResult<()> {
    match access.org_read_only {
        Some(code) => Err(ChatError::refused(code)),
        None => Ok(()),
    }
}

fn at_least(role: Role, needed: Role) -> ChatResult<Role> {
    if role < needed {
        return Err(ChatError::denied(format!(
            "This needs the {} role in the organization.",
            needed.as_str()
        )));
    }
    Ok(role)
}
