//! Row shapes shared by both engines, and helpers that do not depend on the engine.

use chrono::{DateTime, Utc};

mod message;
pub(super) use message::{
    encode_ids, encode_reactions, message_columns_of, repliers_after, BatchRow, MessageRow,
    MESSAGE_COLUMNS,
};

use crate::{DueDelivery, RoomAccess, StoreError};
use chatboard_core::error_code::ErrorCode;
use chatboard_core::events::OutboxEvent;
use chatboard_core::model::{
    AccessLevel, DeliveryStatus, OrgMember, OrgQuotas, OrgView, Role, Room, RoomMember,
    UnreadCount, User, Webhook, WebhookDelivery,
};

/// `$first, $first+1, ...`, one placeholder per item of an `IN (...)` list.
pub(super) fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A LIKE pattern (with `ESCAPE '\'`) for [`folded`] values starting with `prefix`, any
/// case: `%`, `_` and `\` in it match themselves.
pub(super) fn like_prefix(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars().flat_map(char::to_lowercase) {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(if c == 'ς' { 'σ' } else { c });
    }
    pattern.push('%');
    pattern
}

/// SQL: `expr` as name lookups compare it: lowercased letter by letter, Greek's final sigma as
/// the other ("ΠΑΠΑΣ" and "Παπας" are one name).
pub(super) fn folded(expr: &str) -> String {
    format!("replace(lower({expr}), 'ς', 'σ')")
}

/// SQL: whether user `u`'s address, first or last name starts with the [`like_prefix`] pattern
/// `param`.
pub(super) fn user_name_starts(param: &str) -> String {
    ["u.email", "u.first_name", "u.last_name"]
        .map(|column| format!("{} LIKE {param} ESCAPE '\\'", folded(column)))
        .join(" OR ")
}

/// Columns selected for a user.
pub(super) const USER_COLUMNS: &str =
    "id, email, first_name, last_name, avatar_url, email_notifications, created_at";

#[derive(sqlx::FromRow)]
pub(super) struct UserRow {
    id: i64,
    email: String,
    first_name: String,
    last_name: String,
    avatar_url: Option<String>,
    email_notifications: bool,
    created_at: DateTime<Utc>,
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> Self {
        User {
            id: r.id,
            email: r.email,
            first_name: r.first_name,
            last_name: r.last_name,
            avatar_url: r.avatar_url,
            email_notifications: r.email_notifications,
            created_at: r.created_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct UserWithHashRow {
    #[sqlx(flatten)]
    pub user: UserRow,
    pub password_hash: String,
}

/// The org object as a member sees it; `$1` is the member's user id.
pub(super) const ORG_VIEW_SELECT: &str =
    "SELECT o.id, o.name, o.slug, m.role, o.managed, o.suspended, o.archived_at, \
       o.max_members, o.max_rooms, o.upload_max_bytes, o.upload_pending_bytes, o.upload_stored_bytes, \
       o.retention_days, o.rate_limit_per_minute, \
       o.created_at, (SELECT COUNT(*) FROM org_members c WHERE c.org_id = o.id) AS member_count \
     FROM orgs o JOIN org_members m ON m.org_id = o.id AND m.user_id = $1";

#[derive(sqlx::FromRow)]
pub(super) struct OrgViewRow {
    id: i64,
    name: String,
    slug: String,
    role: String,
    managed: bool,
    suspended: bool,
    archived_at: Option<DateTime<Utc>>,
    #[sqlx(flatten)]
    quotas: QuotaRow,
    created_at: DateTime<Utc>,
    member_count: i64,
}

/// An org's quota columns.
#[derive(sqlx::FromRow)]
pub(super) struct QuotaRow {
    max_members: Option<i32>,
    max_rooms: Option<i32>,
    upload_max_bytes: Option<i64>,
    upload_pending_bytes: Option<i64>,
    upload_stored_bytes: Option<i64>,
    retention_days: Option<i32>,
    rate_limit_per_minute: Option<i32>,
}

impl From<QuotaRow> for OrgQuotas {
    fn from(r: QuotaRow) -> Self {
        OrgQuotas {
            max_members: r.max_members,
            max_rooms: r.max_rooms,
            upload_max_bytes: r.upload_max_bytes,
            upload_pending_bytes: r.upload_pending_bytes,
            upload_stored_bytes: r.upload_stored_bytes,
            retention_days: r.retention_days,
            rate_limit_per_minute: r.rate_limit_per_minute,
        }
    }
}

impl TryFrom<OrgViewRow> for OrgView {
    type Error = StoreError;
    fn try_from(r: OrgViewRow) -> Result<Self, StoreError> {
        Ok(OrgView {
            id: r.id,
            name: r.name,
            slug: r.slug,
            role: parse_role(&r.role)?,
            member_count: r.member_count,
            managed: r.managed,
            suspended: r.suspended,
            archived: r.archived_at.is_some(),
            quotas: r.quotas.into(),
            created_at: r.created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct OrgMemberRow {
    user_id: i64,
    email: String,
    first_name: String,
    last_name: String,
    role: String,
    joined_at: DateTime<Utc>,
}

impl TryFrom<OrgMemberRow> for OrgMember {
    type Error = StoreError;
    fn try_from(r: OrgMemberRow) -> Result<Self, StoreError> {
        Ok(OrgMember {
            user_id: r.user_id,
            email: r.email,
            first_name: r.first_name,
            last_name: r.last_name,
            role: parse_role(&r.role)?,
            joined_at: r.joined_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct InviteRow {
    pub id: i64,
    pub org_id: i64,
    pub email: String,
    pub role: String,
    pub expires_at: DateTime<Utc>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Columns of the room object; the member count is kept by triggers (`room_seat_counts`).
pub(super) const ROOM_COLUMNS: &str =
    "r.id, r.org_id, r.name, r.is_dm, r.access_level, r.created_by, r.created_at, \
     (SELECT c.seats FROM room_seat_counts c WHERE c.room_id = r.id) AS members_count, \
     r.last_msg_id";

#[derive(sqlx::FromRow)]
pub(super) struct RoomRow {
    id: i64,
    org_id: i64,
    name: String,
    is_dm: bool,
    access_level: String,
    created_by: Option<i64>,
    created_at: DateTime<Utc>,
    members_count: i64,
    last_msg_id: Option<i64>,
}

impl TryFrom<RoomRow> for Room {
    type Error = StoreError;
    fn try_from(r: RoomRow) -> Result<Self, StoreError> {
        Ok(Room {
            id: r.id,
            org: r.org_id,
            name: r.name,
            is_dm: r.is_dm,
            access_level: parse_access_level(&r.access_level)?,
            created_by: r.created_by,
            created_at: r.created_at,
            members_count: r.members_count,
            last_msg_id: r.last_msg_id,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct RoomAccessRow {
    #[sqlx(flatten)]
    room: RoomRow,
    org_role: String,
    is_member: bool,
    org_suspended: bool,
    org_archived: bool,
}

/// Why an organization takes no writes, if it takes none: archived, else suspended. One rule
/// for every write that checks it (room access, posts, edits, reactions, member changes).
pub(super) fn read_only_code(suspended: bool, archived: bool) -> Option<ErrorCode> {
    if archived {
        Some(ErrorCode::OrgArchived)
    } else if suspended {
        Some(ErrorCode::OrgSuspended)
    } else {
        None
    }
}

impl TryFrom<RoomAccessRow> for RoomAccess {
    type Error = StoreError;
    fn try_from(r: RoomAccessRow) -> Result<Self, StoreError> {
        Ok(RoomAccess {
            room: Room::try_from(r.room)?,
            org_role: parse_role(&r.org_role)?,
            is_member: r.is_member,
            org_read_only: read_only_code(r.org_suspended, r.org_archived),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct RoomMemberRow {
    user_id: i64,
    email: String,
    first_name: String,
    last_name: String,
    org_role: Option<String>,
    last_read_msg_id: Option<i64>,
    joined_at: DateTime<Utc>,
}

impl TryFrom<RoomMemberRow> for RoomMember {
    type Error = StoreError;
    fn try_from(r: RoomMemberRow) -> Result<Self, StoreError> {
        Ok(RoomMember {
            user_id: r.user_id,
            email: r.email,
            first_name: r.first_name,
            last_name: r.last_name,
            org_role: r.org_role.as_deref().map(parse_role).transpose()?,
            last_read_msg_id: r.last_read_msg_id,
            joined_at: r.joined_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct UnreadRow {
    room_id: i64,
    room_name: String,
    unread_count: i64,
    mentions: i64,
    last_read_msg_id: Option<i64>,
    last_msg_id: Option<i64>,
}

impl From<UnreadRow> for UnreadCount {
    fn from(r: UnreadRow) -> Self {
        UnreadCount {
            room_id: r.room_id,
            room_name: r.room_name,
            unread_count: r.unread_count,
            mentions: r.mentions,
            last_read_msg_id: r.last_read_msg_id,
            last_msg_id: r.last_msg_id,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct OutboxRow {
    position: i64,
    event_id: String,
    event_type: String,
    org_id: i64,
    room_id: Option<i64>,
    payload: String,
    created_at: DateTime<Utc>,
}

impl TryFrom<OutboxRow> for OutboxEvent {
    type Error = StoreError;
    fn try_from(r: OutboxRow) -> Result<Self, StoreError> {
        let data = serde_json::from_str(&r.payload)
            .map_err(|e| StoreError::Database(sqlx::Error::Decode(e.into())))?;
        Ok(OutboxEvent {
            position: r.position,
            id: r.event_id,
            event_type: r.event_type,
            org_id: r.org_id,
            room_id: r.room_id,
            data,
            created_at: r.created_at,
        })
    }
}

/// An access-level column's value; the CHECK constraint makes anything else a corrupt row.
pub(super) fn parse_access_level(s: &str) -> Result<AccessLevel, StoreError> {
    AccessLevel::parse(s).ok_or_else(|| {
        StoreError::Database(sqlx::Error::Decode(
            format!("unknown access level {s:?}").into(),
        ))
    })
}

/// The key that makes a direct-message room unique per pair of users.
pub(super) fn dm_key(a: i64, b: i64) -> String {
    format!("{}:{}", a.min(b), a.max(b))
}

/// A role column's value; the CHECK constraint makes anything else a corrupt row.
pub(super) fn parse_role(s: &str) -> Result<Role, StoreError> {
    Role::parse(s).ok_or_else(|| {
        StoreError::Database(sqlx::Error::Decode(format!("unknown role {s:?}").into()))
    })
}

/// True when the error is a unique-constraint violation.
pub(super) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// Characters of a slug's random suffix.
const SUFFIX_ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
/// Length of a slug's random suffix (32^6, about a billion, per name).
const SUFFIX_LEN: usize = 6;

/// A new organization's slug: the name's ASCII letters and digits, lower-cased, words joined by
/// single dashes (`org` when none are left), then a random suffix (`acme-corp-k3x9qd`). Every
/// slug has a suffix, so a slug says nothing about other organizations (a clash-numbered
/// `acme-corp-2` once told a stranger that another tenant was called Acme Corp), and choosing
/// one costs the same however many organizations share a name. The suffix is long enough that
/// a clash is a retry the callers already make for a unique violation, not a plan.
pub(super) fn new_slug(name: &str) -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    let suffix: String = (0..SUFFIX_LEN)
        .map(|_| char::from(SUFFIX_ALPHABET[rng.gen_range(0..SUFFIX_ALPHABET.len())]))
        .collect();
    format!("{}-{suffix}", slug_words(name))
}

/// The name's words as a URL-safe slug base of at most 50 characters.
fn slug_words(name: &str) -> String {
    let mut slug = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
        if slug.len() >= 50 {
            break;
        }
    }
    let slug = slug.trim_end_matches('-');
    if slug.is_empty() {
        "org".to_owned()
    } else {
        slug.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_url_safe_and_say_nothing_of_others() {
        let slug = new_slug("  Acme Corp!! 2026 ");
        let (base, suffix) = slug.rsplit_once('-').unwrap();
        assert_eq!(base, "acme-corp-2026");
        assert_eq!(suffix.len(), SUFFIX_LEN);
        assert!(suffix.bytes().all(|b| SUFFIX_ALPHABET.contains(&b)));
        assert!(new_slug("日本").starts_with("org-"));
        assert_ne!(new_slug("Acme"), new_slug("Acme"));
    }

    #[test]
    fn like_patterns_match_wildcards_literally() {
        assert_eq!(like_prefix("Ada"), "ada%");
        assert_eq!(like_prefix("a_b%"), "a\\_b\\%%");
        assert_eq!(like_prefix("Παπας"), "παπασ%");
    }
}

/// A stored value that breaks the schema's rules: a corrupt row.
fn corrupt(what: String) -> StoreError {
    StoreError::Database(sqlx::Error::Decode(what.into()))
}

/// Columns selected for a webhook.
pub(super) const WEBHOOK_COLUMNS: &str =
    "id, org_id, url, events, is_active, managed, disabled_reason, failing_since, created_by, \
     created_at, updated_at";

#[derive(sqlx::FromRow)]
pub(super) struct WebhookRow {
    id: i64,
    org_id: i64,
    url: String,
    events: String,
    is_active: bool,
    managed: bool,
    disabled_reason: Option<String>,
    failing_since: Option<DateTime<Utc>>,
    created_by: Option<i64>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<WebhookRow> for Webhook {
    type Error = StoreError;
    fn try_from(r: WebhookRow) -> Result<Self, StoreError> {
        let events = serde_json::from_str(&r.events)
            .map_err(|e| corrupt(format!("webhook {} events: {e}", r.id)))?;
        Ok(Webhook {
            id: r.id,
            org: r.org_id,
            url: r.url,
            events,
            is_active: r.is_active,
            managed: r.managed,
            disabled_reason: r.disabled_reason,
            failing_since: r.failing_since,
            created_by: r.created_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

/// The stored form of an event filter.
pub(super) fn encode_events(events: &[String]) -> String {
    serde_json::Value::from(events.to_vec()).to_string()
}

/// Columns selected for a delivery log entry.
pub(super) const DELIVERY_COLUMNS: &str = "id, event_id, event_type, status, attempts, \
     last_status_code, last_error, next_attempt_at, created_at, delivered_at";

#[derive(sqlx::FromRow)]
pub(super) struct DeliveryRow {
    id: i64,
    event_id: String,
    event_type: String,
    status: String,
    attempts: i32,
    last_status_code: Option<i32>,
    last_error: Option<String>,
    next_attempt_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    delivered_at: Option<DateTime<Utc>>,
}

impl TryFrom<DeliveryRow> for WebhookDelivery {
    type Error = StoreError;
    fn try_from(r: DeliveryRow) -> Result<Self, StoreError> {
        let status = DeliveryStatus::parse(&r.status)
            .ok_or_else(|| corrupt(format!("delivery {} status {:?}", r.id, r.status)))?;
        Ok(WebhookDelivery {
            id: r.id,
            event_id: r.event_id,
            event_type: r.event_type,
            status,
            attempts: r.attempts,
            last_status_code: r.last_status_code,
            last_error: r.last_error,
            next_attempt_at: r.next_attempt_at,
            created_at: r.created_at,
            delivered_at: r.delivered_at,
        })
    }
}

/// A claimed delivery joined with its webhook and outbox event.
#[derive(sqlx::FromRow)]
pub(super) struct DueRow {
    id: i64,
    webhook_id: i64,
    url: String,
    secret: String,
    attempts: i32,
    max_attempts: Option<i32>,
    #[sqlx(flatten)]
    event: OutboxRow,
}

/// Selects [`DueRow`]s; append the `IN (...)` list of delivery ids.
pub(super) const DUE_SELECT: &str = "SELECT d.id, d.webhook_id, w.url, w.secret, d.attempts, \
       w.max_attempts, o.id AS position, o.event_id, o.event_type, o.org_id, o.room_id, \
       o.payload, o.created_at \
     FROM webhook_deliveries d \
       JOIN webhooks w ON w.id = d.webhook_id \
       JOIN outbox o ON o.id = d.outbox_id \
     WHERE d.id IN";

impl DueRow {
    /// The delivery's id.
    pub(super) fn id(&self) -> i64 {
        self.id
    }
}

impl TryFrom<DueRow> for DueDelivery {
    type Error = StoreError;
    fn try_from(r: DueRow) -> Result<Self, StoreError> {
        Ok(DueDelivery {
            id: r.id,
            webhook_id: r.webhook_id,
            url: r.url,
            secret: r.secret,
            attempts: r.attempts,
            max_attempts: r.max_attempts,
            event: OutboxEvent::try_from(r.event)?,
        })
    }
}
