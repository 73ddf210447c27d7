//! Messages: posting (with an attachment, idempotent on `client_msg_id`), editing, deleting,
//! read receipts and typing.

use chatboard_core::bus::BusEvent;
use chatboard_core::error_code::ErrorCode;
use chatboard_core::events::DomainEvent;
use chatboard_core::model::{Message, Role, UploadStatus, CLIENT_MSG_ID_MAX, SMALL_ROOM_MEMBERS};
use chatboard_store::{FileAttachment, NewMessage, QueuedMessage};
use chrono::Utc;
use tracing::instrument;

use crate::access::writable;
use crate::error::{ChatError, ChatResult};
use crate::uploads::{within_org_upload_max, UploadCharge};
use crate::validate::Validator;
use crate::Chat;

/// Longest upload id looked up (ours are UUIDs).
const UPLOAD_ID_MAX: usize = 64;

/// A message as its sender wrote it, before any check.
#[derive(Debug, Clone, Default)]
pub struct MessageDraft {
    /// Text; required unless a file is attached.
    pub body: Option<String>,
    /// Id of a completed upload of the sender's, to attach.
    pub file_id: Option<String>,
    /// The sender's idempotency key: sending the same one again returns the original.
    pub client_msg_id: Option<String>,
    /// The message it answers, in the same room: the reply joins that message's thread (the
    /// thread of its root, when it is itself a reply).
    pub parent_id: Option<i64>,
}

/// A posted message.
#[derive(Debug, Clone)]
pub struct Posted {
    /// The message as stored.
    pub message: Message,
    /// False when the sender had already posted this `client_msg_id`: nothing new was stored
    /// or announced, and `message` is the original.
    pub created: bool,
}

/// What a [`QueuedPost`] waits for.
enum Pending {
    /// The store's commit of the message.
    Queued(QueuedMessage),
    /// Nothing: the sender had already posted this `client_msg_id`, and this is that message.
    Repeat(Message),
}

/// A message checked and queued for storing ([`Chat::queue_post`]); [`QueuedPost::posted`]
/// waits for its commit and announces it.
#[must_use = "the message is announced only once `posted` is awaited"]
pub struct QueuedPost {
    chat: Chat,
    pending: Pending,
    /// Who the message mentions, to be told once it is stored.
    mentioned: Vec<i64>,
    /// The charge of the message's file this post made, given back if the commit fails.
    charge: Option<UploadCharge>,
    /// The charge of the message's file an earlier post made, made again after the commit in
    /// case that post failed and gave it back meanwhile.
    relied_on: Option<UploadCharge>,
}

impl QueuedPost {
    /// Waits for the message's commit and announces it (a repeated send was announced the
    /// first time and is not again).
    #[instrument(name = "posted", skip_all, err(level = "debug"))]
    pub async fn posted(self) -> ChatResult<Posted> {
        let Self {
            chat,
            pending,
            mentioned,
            charge,
            relied_on,
        } = self;
        let queued = match pending {
            Pending::Queued(queued) => queued,
            Pending::Repeat(message) => {
                return Ok(Posted {
                    message,
                    created: false,
                })
            }
        };
        let (message, created) = match chat.store().queued_message(queued).await {
            Ok(stored) => stored,
            Err(err) => {
                // Refused at the commit (the seat lost or the organization suspended since
                // the checks, or a failure): the file must not stay counted against it.
                if let Some(charge) = charge {
                    chat.release_upload_charge(charge).await;
                }
                return Err(err.into());
            }
        };
        if let Some(charge) = relied_on {
            chat.keep_upload_charged(charge).await;
        }
        // A repeat (its client_msg_id already used) answers with the message first sent; a
        // file this request charged is not that message's, and must not stay counted.
        if let Some(charge) =
            charge.filter(|c| !created && message.file.as_ref().is_none_or(|f| f.id != c.upload_id))
        {
            chat.release_upload_charge(charge).await;
        }
        if created {
            chat.announcer()
                .domain(&DomainEvent::MessageCreated(message.clone()))
                .await;
            if let Some(root) = message.parent_id {
                chat.announce_thread(message.room, root).await;
            }
            chat.announce_mentions(&message, mentioned).await;
        }
        Ok(Posted { message, created })
    }
}

impl Chat {
    /// Posts a message to a room the sender sits in.
    pub async fn post_message(
        &self,
        sender: i64,
        room_id: i64,
        draft: MessageDraft,
    ) -> ChatResult<Posted> {
        self.queue_post(sender, room_id, draft)
            .await?
            .posted()
            .await
    }

    /// Checks a message (validation, the sender's limits, who it mentions) and queues it for
    /// storing: the first half of [`Chat::post_message`]. Messages queued one after another
    /// are stored in that order, so a connection may queue its next one before the last one's
    /// [`QueuedPost::posted`] returns. The seat is checked at the commit (404 then).
    #[instrument(skip(self, draft), err(level = "debug"))]
    pub async fn queue_post(
        &self,
        sender: i64,
        room_id: i64,
        draft: MessageDraft,
    ) -> ChatResult<QueuedPost> {
        let mut v = Validator::default();
        let file = match draft.file_id.as_deref() {
            Some(id) => self.ready_upload_of(id, sender).await?,
            None => None,
        };
        if draft.file_id.is_some() && file.is_none() {
            v.add("file_id", "No completed upload of yours has this id.");
        }
        let raw_body = draft.body.as_deref().unwrap_or("");
        // With a file the text is optional; without one it is required.
        let body = if file.is_some() && raw_body.trim().is_empty() {
            String::new()
        } else {
            v.message_body("body", raw_body)
        };
        let client_msg_id = draft
            .client_msg_id
            .as_deref()
            .map(|id| v.text("client_msg_id", id, 1, CLIENT_MSG_ID_MAX));
        let parent_id = match draft.parent_id {
            Some(parent) => {
                // Someone without a seat learns nothing of the room's messages, not even
                // whether one is there (as a refused body beside a found parent once told):
                // 404 first.
                self.member_access(room_id, sender).await?;
                let root = self.thread_root_of(room_id, parent).await?;
                if root.is_none() {
                    v.add("parent_id", "No message with this id in this room.");
                }
                root
            }
            None => None,
        };
        v.finish()?;
        if let Err(limited) = self.0.limits.check(room_id, sender).await {
            // A caller without a seat learns nothing about the room, not even that its
            // organization limits posting: 404 as for any room not theirs.
            self.member_access(room_id, sender).await?;
            // A resend of a message already stored (a client that lost the answer) gets that
            // message, as it would under the limit: refusing it would tell the client its
            // message was not taken.
            if let Some(id) = &client_msg_id {
                if let Some(message) = self.store().sent_before(room_id, sender, id).await? {
                    return Ok(QueuedPost {
                        chat: self.clone(),
                        pending: Pending::Repeat(message),
                        mentioned: Vec::new(),
                        charge: None,
                        relied_on: None,
                    });
                }
            }
            return Err(limited);
        }
        // The file counts against the organization's quota only once the post is otherwise
        // fine: a refused post charges nothing (one refused later gives the charge back).
        let (mut charge, mut relied_on) = (None, None);
        if let Some(file) = &file {
            let org_id = self
                .check_org_upload_limit(room_id, sender, file.size)
                .await?;
            let this = UploadCharge {
                upload_id: file.id.clone(),
                org_id,
            };
            if self.charge_upload(&file.id, org_id, file.size).await? {
                charge = Some(this);
            } else {
                relied_on = Some(this);
            }
        }
        let mentions = match self.resolve_mentions(room_id, sender, &body, None).await {
            Ok(mentions) => mentions,
            Err(err) => {
                if let Some(charge) = charge {
                    self.release_upload_charge(charge).await;
                }
                return Err(err);
            }
        };
        let mentioned = mentions.everyone.clone();
        let queued = self.store().queue_message(
            NewMessage {
                room_id,
                sender_id: sender,
                body,
                client_msg_id,
                file,
                parent_id,
                mentions,
            },
            Utc::now(),
        );
        Ok(QueuedPost {
            chat: self.clone(),
            pending: Pending::Queued(queued),
            mentioned,
            charge,
            relied_on,
        })
    }

    /// Replaces a message's text (its sender only); a deleted message is refused.
    #[instrument(skip(self, body), err(level = "debug"))]
    pub async fn edit_message(
        &self,
        editor: i64,
        room_id: i64,
        msg_id: i64,
        body: &str,
    ) -> ChatResult<Message> {
        // A file's caption may be taken away, as a file may be posted without one; the text of
        // a message without a file may not (checked once the message is read).
        let raw = body;
        let blank = raw.trim().is_empty();
        let mut v = Validator::default();
        let body = if blank {
            String::new()
        } else {
            v.message_body("body", raw)
        };
        v.finish()?;
        writable(&self.member_access(room_id, editor).await?)?;
        let message = self.existing_message(room_id, msg_id).await?;
        if message.sender != Some(editor) {
            return Err(ChatError::denied("Only the sender may edit a message."));
        }
        if message.is_deleted {
            return Err(ChatError::refused(ErrorCode::MessageDeleted));
        }
        if blank && message.file.is_none() {
            let mut v = Validator::default();
            v.message_body("body", raw);
            v.finish()?;
        }
        // An `@here` kept through an edit keeps whom it reached: fixing a typo neither takes
        // the mention from those who went offline since (their unread mention, their mentions
        // page) nor pings those who came online. Whom it reached is who the message mentioned
        // but did not name (with an `@room` too, that was everyone: `@here` is then resolved
        // anew).
        let before_text = crate::mentions::parse_mentions(&message.body);
        // Who the version before mentions (its rows), read once for both uses below.
        let mut before = None;
        if before_text.here && !before_text.room {
            before = Some(self.store().mentioned_by(msg_id).await?);
        }
        let kept_here: Option<Vec<i64>> = before.as_ref().map(|rows: &Vec<i64>| {
            rows.iter()
                .copied()
                .filter(|id| !message.mentions.contains(id))
                .collect()
        });
        let mentions = self
            .resolve_mentions(room_id, editor, &body, kept_here.as_deref())
            .await?;
        if !mentions.everyone.is_empty() {
            // An edit notifies those its version before did not mention (its mention rows, as
            // the store compares them): such an edit counts against the posting limits like a
            // post, or editing `@room` out and back in, or `@here` added as people come online,
            // would ping them as fast as requests go. (A typo fixed in a message that mentions
            // the same people is not one.)
            let before = match before {
                Some(before) => before,
                None => self.store().mentioned_by(msg_id).await?,
            };
            let names_anew = mentions
                .everyone
                .iter()
                .any(|id| before.binary_search(id).is_err());
            if names_anew {
                self.0.limits.check(room_id, editor).await?;
            }
        }
        let (mut message, newly_mentioned) = self
            .store()
            .edit_message(room_id, msg_id, &body, &mentions, Utc::now())
            .await?;
        self.announcer()
            .domain(&DomainEvent::MessageUpdated(message.clone()))
            .await;
        // Only those the edit mentions for the first time hear of it.
        self.announce_mentions(&message, newly_mentioned).await;
        self.mark_own_reactions(editor, std::slice::from_mut(&mut message))
            .await?;
        Ok(message)
    }

    /// Deletes a message (its sender or an org ADMIN): it stays, empty, marked deleted.
    /// Deleting it again changes nothing and succeeds.
    #[instrument(skip(self), err(level = "debug"))]
    pub async fn delete_message(&self, actor: i64, room_id: i64, msg_id: i64) -> ChatResult<()> {
        // An ADMIN moderates rooms they do not sit in; anyone else needs a seat.
        let access = self.room_access(room_id, actor).await?;
        if !access.is_member && access.org_role != Role::Admin {
            return Err(ChatError::not_found());
        }
        writable(&access)?;
        let message = self.existing_message(room_id, msg_id).await?;
        if message.sender != Some(actor) && access.org_role != Role::Admin {
            return Err(ChatError::denied(
                "Only the sender or an organization ADMIN may delete a message.",
            ));
        }
        if message.is_deleted {
            // The same outcome, and nothing to announce again (the store writes no second
            // event either).
            return Ok(());
        }
        let message = self
            .store()
            .delete_message(room_id, msg_id, actor, Utc::now())
            .await?;
        self.announcer()
            .domain(&DomainEvent::MessageDeleted(message))
            .await;
        Ok(())
    }

    /// Moves the reader's pointer forward to `msg_id` (never back) and returns where it stands;
    /// 404 when the message is not in the room or the reader has no seat there.
    #[instrument(skip(self), err(level = "debug"))]
    pub async fn mark_read(&self, reader: i64, room_id: i64, msg_id: i64) -> ChatResult<i64> {
        let mark = self.store().mark_read(room_id, reader, msg_id).await?;
        // A receipt that moved nothing (repeated, or for an older message) tells nobody
        // anything: the room hears only of pointers that moved.
        if mark.moved {
            self.announcer()
                .publish(BusEvent::Read {
                    room: room_id,
                    user_id: reader,
                    last_read_msg_id: mark.last_read_msg_id,
                    reader_only: mark.room_members > SMALL_ROOM_MEMBERS,
                })
                .await;
        }
        Ok(mark.last_read_msg_id)
    }

    /// Tells the room's other sockets that `user_id` started or stopped typing (never stored);
    /// repeats within [`crate::limits::TYPING_INTERVAL`] are dropped.
    pub async fn typing(&self, user_id: i64, user_email: &str, room_id: i64, is_typing: bool) {
        if !self.0.limits.typing_allowed(user_id, room_id, is_typing) {
            return;
        }
        self.announcer()
            .publish(BusEvent::Typing {
                room: room_id,
                user_id,
                user_email: user_email.to_owned(),
                is_typing,
            })
            .await;
    }

    /// Tells the multiplexed sockets of the people `message` mentions.
    async fn announce_mentions(&self, message: &Message, user_ids: Vec<i64>) {
        if user_ids.is_empty() {
            return;
        }
        self.announcer()
            .publish(BusEvent::Mention {
                room: message.room,
                message: message.clone(),
                user_ids,
            })
            .await;
    }

    async fn existing_message(&self, room_id: i64, msg_id: i64) -> ChatResult<Message> {
        self.store()
            .message(room_id, msg_id)
            .await?
            .ok_or_else(ChatError::not_found)
    }

    /// The sender's ready upload `id`, as an attachment; `None` for anything else.
    async fn ready_upload_of(&self, id: &str, user_id: i64) -> ChatResult<Option<FileAttachment>> {
        if id.len() > UPLOAD_ID_MAX {
            return Ok(None);
        }
        Ok(self.store().upload(id).await?.and_then(|u| {
            (u.owner_id == user_id && u.status == UploadStatus::Ready).then_some(FileAttachment {
                id: u.id,
                filename: u.filename,
                content_type: u.content_type,
                size: u.size,
            })
        }))
    }

    /// 413 when the room's organization has a smaller upload quota than the file (uploads
    /// belong to their owner until attached, so the org's limit applies here); the org's id
    /// otherwise.
    async fn check_org_upload_limit(
        &self,
        room_id: i64,
        user_id: i64,
        size: i64,
    ) -> ChatResult<i64> {
        let access = self.member_access(room_id, user_id).await?;
        let org = self
            .store()
            .org_for_member(access.room.org, user_id)
            .await?;
        if let Some(org) = org {
            within_org_upload_max(&org.quotas, size)?;
        }
        Ok(access.room.org)
    }
}
