//! Rooms: creating them, direct messages, settings, deleting, and seats (join, leave, invite).

use chatboard_core::error_code::ErrorCode;
use chatboard_core::model::{AccessLevel, Role, Room, RoomMember};
use chatboard_store::{JoinVia, NewRoom, RoomPatch};
use chrono::Utc;
use tracing::instrument;

use crate::access::writable;
use crate::announce::{seats_of, seats_of_room};
use crate::error::{ChatError, ChatResult};
use crate::validate::Validator;
use crate::Chat;

/// Longest room name.
pub const ROOM_NAME_MAX: usize = 120;

/// A room as its creator asks for it.
#[derive(Debug, Clone)]
pub struct RoomDraft {
    /// Its organization.
    pub org_id: i64,
    /// 1 to 120 characters.
    pub name: String,
    /// Who may join (default PUBLIC).
    pub access_level: Option<AccessLevel>,
}

/// A room someone now sits in.
#[derive(Debug, Clone)]
pub struct Joined {
    /// The room as it stands.
    pub room: Room,
    /// False when they already sat there (nothing changed).
    pub added: bool,
}

impl Chat {
    /// Creates a room (org MANAGER or ADMIN). PUBLIC rooms seat every org member, MANAGER_ONLY
    /// rooms every MANAGER and ADMIN, PRIVATE rooms only the creator.
    #[instrument(skip(self, draft), fields(org_id = draft.org_id), err(level = "debug"))]
    pub async fn create_room(&self, creator: i64, draft: RoomDraft) -> ChatResult<Room> {
        let mut v = Validator::default();
        let name = v.text("name", &draft.name, 1, ROOM_NAME_MAX);
        v.finish()?;
        let role = self.org_role(draft.org_id, creator).await?;
        if role < Role::Manager {
            return Err(ChatError::denied(
                "Creating rooms needs the MANAGER or ADMIN role.",
            ));
        }
        let room = self
            .store()
            .create_room(
                NewRoom {
                    org_id: draft.org_id,
                    name,
                    access_level: draft.access_level.unwrap_or(AccessLevel::Public),
                    created_by: creator,
                },
                Utc::now(),
            )
            .await?;
        // Everyone seated with the room's creation follows it on their multiplexed sockets.
        self.announcer().seated_in_room_made(room.id).await;
        tracing::info!(
            room_id = room.id,
            org_id = room.org,
            user_id = creator,
            "room created"
        );
        Ok(room)
    }

    /// Opens the direct-message room of two members of an organization: created if needed
    /// (`added` true), else the existing one.
    #[instrument(skip(self), err(level = "debug"))]
    pub async fn open_dm(&self, user_id: i64, org_id: i64, other_id: i64) -> ChatResult<Joined> {
        self.org_role(org_id, user_id).await?;
        if other_id == user_id {
            return Err(ChatError::field(
                "user_id",
                "A direct message needs another person.",
            ));
        }
        if self.store().member_role(org_id, other_id).await?.is_none() {
            return Err(ChatError::field(
                "user_id",
                "Not a member of this organization.",
            ));
        }
        let name = self.dm_name(user_id, other_id).await?;
        let (mut room, created) = self
            .store()
            .open_dm(org_id, user_id, other_id, &name, Utc::now())
            .await?;
        if created {
            self.announcer()
                .seats_gained(&seats_of_room(room.id, &[user_id, other_id]))
                .await;
        } else {
            // One of the two left the organization (losing every seat in it) and came back:
            // the conversation is theirs again.
            let seated = self.store().member_ids(room.id).await?;
            for member in [user_id, other_id] {
                if !seated.contains(&member) {
                    // The room as it stands with the seat (its member count). A read-only
                    // organization takes no seat: the conversation opens for whoever still
                    // sits in it, as it is.
                    match self
                        .seat(user_id, room.id, member, JoinVia::Invite, None)
                        .await
                    {
                        Ok(joined) => room = joined.room,
                        Err(e) if seated.contains(&user_id) && e.is_read_only_org() => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Ok(Joined {
            room,
            added: created,
        })
    }

    /// "a@example.com & b@example.com", in user-id order, cut to the room-name limit.
    async fn dm_name(&self, a: i64, b: i64) -> ChatResult<String> {
        let mut emails = Vec::with_capacity(2);
        for id in [a.min(b), a.max(b)] {
            let user = self
                .store()
                .user_by_id(id)
                .await?
                .ok_or_else(ChatError::not_found)?;
            emails.push(user.email);
        }
        Ok(emails.join(" & ").chars().take(ROOM_NAME_MAX).collect())
    }

    /// One room, for someone with a seat in it.
    pub async fn room(&self, user_id: i64, room_id: i64) -> ChatResult<Room> {
        Ok(self.member_access(room_id, user_id).await?.room)
    }

    /// The members of a room with their read pointers, for someone with a seat in it.
    pub async fn room_members(&self, user_id: i64, room_id: i64) -> ChatResult<Vec<RoomMember>> {
        self.member_access(room_id, user_id).await?;
        Ok(self.store().room_members(room_id).await?)
    }

    /// Renames or re-levels a room (its creator or an org ADMIN); direct messages are refused.
    #[instrument(skip(self, name), err(level = "debug"))]
    pub async fn update_room(
        &self,
        user_id: i64,
        room_id: i64,
        name: Option<&str>,
        access_level: Option<AccessLevel>,
    ) -> ChatResult<Room> {
        let mut v = Validator::default();
        let name = name.map(|n| v.text("name", n, 1, ROOM_NAME_MAX));
        v.finish()?;
        writable(&self.manager_access(room_id, user_id).await?)?;
        self.store()
            .update_room(room_id, user_id, RoomPatch { name, access_level })
            .await?;
        Ok(self.room_access(room_id, user_id).await?.room)
    }

    /// Deletes a room with its messages (its creator or an org ADMIN). A direct message
    /// belongs to its two people alike, and holds the other's messages: only an org ADMIN
    /// deletes one (moderation), not whichever of the two opened it first.
    #[instrument(skip(self), err(level = "debug"))]
    pub async fn delete_room(&self, user_id: i64, room_id: i64) -> ChatResult<()> {
        let access = self.manager_access(room_id, user_id).await?;
        writable(&access)?;
        if access.room.is_dm && access.org_role != Role::Admin {
            return Err(ChatError::refused_because(
                ErrorCode::DmImmutable,
                "Only an organization ADMIN may delete a direct-message room.",
            ));
        }
        self.store().delete_room(room_id, user_id).await?;
        self.purge_erased_soon();
        self.announcer().rooms_deleted([room_id]).await;
        tracing::info!(room_id, user_id, "room deleted");
        Ok(())
    }

    /// Takes a seat. PUBLIC rooms admit any org member, MANAGER_ONLY rooms MANAGERs and ADMINs;
    /// PRIVATE rooms and direct messages are refused: 404 to whoever may not see them (a
    /// refusal naming why would tell them the room exists), 403 to an ADMIN, who may.
    #[instrument(skip(self), err(level = "debug"))]
    pub async fn join_room(&self, user_id: i64, room_id: i64) -> ChatResult<Joined> {
        let access = self.room_access(room_id, user_id).await?;
        if access.is_member {
            return Ok(Joined {
                room: access.room,
                added: false,
            });
        }
        if access.hidden() {
            return Err(ChatError::not_found());
        }
        writable(&access)?;
        if access.room.is_dm {
            return Err(ChatError::refused(ErrorCode::DmNotJoinable));
        }
        match access.room.access_level {
            AccessLevel::Private => return Err(ChatError::refused(ErrorCode::InviteOnly)),
            level if !level.admits(access.org_role) => {
                return Err(ChatError::denied("This room is for MANAGERs and ADMINs."))
            }
            _ => {}
        }
        self.seat(user_id, room_id, user_id, JoinVia::Join, None)
            .await
    }

    /// Gives up a seat. The two seats of a direct message are fixed.
    #[instrument(skip(self), err(level = "debug"))]
    pub async fn leave_room(&self, user_id: i64, room_id: i64) -> ChatResult<()> {
        let access = self.member_access(room_id, user_id).await?;
        if access.room.is_dm {
            return Err(ChatError::refused(ErrorCode::DmCannotLeave));
        }
        self.store().remove_room_member(room_id, user_id).await?;
        self.announcer()
            .seats_lost(&seats_of(user_id, &[room_id]))
            .await;
        Ok(())
    }

    /// Seats an org member in a room (its creator or an org ADMIN). A MANAGER_ONLY room takes
    /// only MANAGERs and ADMINs; direct messages take nobody.
    #[instrument(skip(self), err(level = "debug"))]
    pub async fn invite_to_room(
        &self,
        user_id: i64,
        room_id: i64,
        invitee: i64,
    ) -> ChatResult<Joined> {
        let access = self.manager_access(room_id, user_id).await?;
        writable(&access)?;
        if access.room.is_dm {
            return Err(ChatError::refused_because(
                ErrorCode::DmImmutable,
                "A direct-message room cannot take more members.",
            ));
        }
        let invitee_role = self
            .store()
            .member_role(access.room.org, invitee)
            .await?
            .ok_or_else(|| ChatError::field("user_id", "Not a member of this organization."))?;
        if access.room.access_level == AccessLevel::ManagerOnly
            && !AccessLevel::ManagerOnly.admits(invitee_role)
        {
            return Err(ChatError::field(
                "user_id",
                "This room is for MANAGERs and ADMINs.",
            ));
        }
        self.seat(user_id, room_id, invitee, JoinVia::Invite, Some(user_id))
            .await
    }

    /// Stores a seat of `seated` and announces it; the room as `actor` sees it afterwards.
    /// `by`, who seats another as the room's manager, must still manage it when the seat goes
    /// in (`None`: a join, or the seating a use case does of its own accord).
    async fn seat(
        &self,
        actor: i64,
        room_id: i64,
        seated: i64,
        via: JoinVia,
        by: Option<i64>,
    ) -> ChatResult<Joined> {
        let added = self
            .store()
            .add_room_member(room_id, seated, via, by, Utc::now())
            .await?;
        if added {
            self.announcer().seated(room_id, seated).await;
        }
        let room = self.room_access(room_id, actor).await?.room;
        Ok(Joined { room, added })
    }
}
