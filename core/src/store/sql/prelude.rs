// Names every engine module uses; included first into each of them.
use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};

use super::rows::*;
use crate::events::{EventType, NewEvent, OutboxEvent};
use crate::model::{AccessLevel, Invite, Message, OrgMember, OrgView, Role, Room, RoomMember, UnreadCount, User, Webhook, WebhookDelivery, Upload, UploadStatus, OrgQuotas};
use crate::store::{
    Engine, JoinVia, MessageStore, NewInvite, NewMessage, NewRoom, NewUser, OrgStore, OutboxStore, PageCursor, PageVersion, RoomPosition,
    ProfilePatch, RefreshOutcome, RoomAccess, RoomPatch, RoomStore, SessionStore, Store, StoreError, StoreResult,
    UserStore, NewUpload, UploadStore, AttemptOutcome, DigestLine, DueEmail, EmailKind, EmailResult, EmailStore, OutgoingEmail, AttemptResult, DueDelivery, NewWebhook, WebhookPatch, WebhookStore,
    AppliedAdmins, AppliedOrg, AppliedWebhook, ManagedOrg, ManagedOrgRef, ManagedWebhook, SpecAdmin, TenantStore,
};

type Pool = sqlx::Pool<Db>;
type Tx<'a> = sqlx::Transaction<'a, Db>;
