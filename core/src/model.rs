//! Domain types shared by the store and the services.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

mod uploads;
mod webhooks;
pub use uploads::{Upload, UploadStatus};
pub use webhooks::{DeliveryStatus, Webhook, WebhookDelivery};

/// A user account as the API shows it (never with a password hash).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct User {
    /// Account id.
    pub id: i64,
    /// Lower-cased email address, unique.
    pub email: String,
    /// Given name, may be empty.
    pub first_name: String,
    /// Family name, may be empty.
    pub last_name: String,
    /// Picture URL, or null.
    pub avatar_url: Option<String>,
    /// Whether the user gets digest emails of messages that arrive while they are offline.
    pub email_notifications: bool,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
}

/// A role within an organization; `Admin` > `Manager` > `Member`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum Role {
    /// Ordinary member.
    Member,
    /// May create rooms and invite members.
    Manager,
    /// Full control of the organization.
    Admin,
}

impl Role {
    /// The name stored in the database and shown in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "ADMIN",
            Role::Manager => "MANAGER",
            Role::Member => "MEMBER",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ADMIN" => Some(Role::Admin),
            "MANAGER" => Some(Role::Manager),
            "MEMBER" => Some(Role::Member),
            _ => None,
        }
    }

    /// Whether a holder of this role may invite someone with `invited` role: managers and
    /// admins invite, and nobody hands out a role above their own.
    pub fn may_invite(self, invited: Role) -> bool {
        self >= Role::Manager && invited <= self
    }
}

/// An organization as seen by one of its members.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OrgView {
    /// Organization id.
    pub id: i64,
    /// Display name.
    pub name: String,
    /// URL-safe unique name derived from the first name.
    pub slug: String,
    /// The caller's role in it.
    pub role: Role,
    /// How many members it has.
    pub member_count: i64,
    /// True when an `Organization` custom resource owns it.
    pub managed: bool,
    /// Members can read but nobody can write (set by the platform team).
    pub suspended: bool,
    /// Read-only for good: its custom resource was deleted and the data retained.
    pub archived: bool,
    /// Limits set by the platform team; null fields mean the deployment's defaults.
    pub quotas: OrgQuotas,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

impl OrgView {
    /// Whether members may change anything in it (neither suspended nor archived).
    pub fn writable(&self) -> bool {
        !self.suspended && !self.archived
    }
}

/// Limits of one organization; `None` means the deployment's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OrgQuotas {
    /// Most members.
    pub max_members: Option<i32>,
    /// Most rooms (direct messages included).
    pub max_rooms: Option<i32>,
    /// Largest attachment, in bytes.
    pub upload_max_bytes: Option<i64>,
    /// Bytes of unfinished uploads presigned for the organization at once.
    pub upload_pending_bytes: Option<i64>,
    /// Bytes of uploads the organization may hold, unfinished ones included.
    pub upload_stored_bytes: Option<i64>,
    /// Days messages are kept before the worker deletes them.
    pub retention_days: Option<i32>,
    /// Messages one member may post per minute in this organization.
    pub rate_limit_per_minute: Option<i32>,
}

/// One member of an organization.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OrgMember {
    /// The member's user id.
    pub user_id: i64,
    /// The member's email.
    pub email: String,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// Role in the organization.
    pub role: Role,
    /// When they joined.
    pub joined_at: DateTime<Utc>,
}

/// A stored invitation (its token is only ever kept as a hash).
#[derive(Debug, Clone, PartialEq)]
pub struct Invite {
    /// Invitation id.
    pub id: i64,
    /// Organization invited to.
    pub org_id: i64,
    /// Invited address, lower-cased.
    pub email: String,
    /// Role granted on acceptance.
    pub role: Role,
    /// When it stops being valid.
    pub expires_at: DateTime<Utc>,
}

/// Who may join a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AccessLevel {
    /// Any organization member; every member is joined on creation and on joining the org.
    Public,
    /// Only MANAGERs and ADMINs; they are joined on creation.
    ManagerOnly,
    /// Only by invitation from the room's creator or an org ADMIN.
    Private,
}

impl AccessLevel {
    /// The name stored in the database and shown in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            AccessLevel::Public => "PUBLIC",
            AccessLevel::ManagerOnly => "MANAGER_ONLY",
            AccessLevel::Private => "PRIVATE",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "PUBLIC" => Some(AccessLevel::Public),
            "MANAGER_ONLY" => Some(AccessLevel::ManagerOnly),
            "PRIVATE" => Some(AccessLevel::Private),
            _ => None,
        }
    }

    /// Whether an org member with `role` may hold a seat in a room of this level without an
    /// invitation.
    pub fn admits(self, role: Role) -> bool {
        match self {
            AccessLevel::Public => true,
            AccessLevel::ManagerOnly => role >= Role::Manager,
            AccessLevel::Private => false,
        }
    }
}

/// A room (channel or direct message).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Room {
    /// Room id.
    pub id: i64,
    /// Organization id.
    pub org: i64,
    /// Display name.
    pub name: String,
    /// True for a direct-message room between two users.
    pub is_dm: bool,
    /// Who may join.
    pub access_level: AccessLevel,
    /// Creator's user id (null once that account is gone).
    pub created_by: Option<i64>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// How many members it has.
    pub members_count: i64,
    /// Id of the newest message, or null when there is none.
    pub last_msg_id: Option<i64>,
}

/// One member of a room.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RoomMember {
    /// The member's user id.
    pub user_id: i64,
    /// Email.
    pub email: String,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// Role in the room's organization (null if they have left it).
    pub org_role: Option<Role>,
    /// Newest message they marked read, or null.
    pub last_read_msg_id: Option<i64>,
    /// When they joined the room.
    pub joined_at: DateTime<Utc>,
}

/// A file attached to a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FileRef {
    /// Upload id.
    pub id: String,
    /// Sanitised file name.
    pub filename: String,
    /// MIME type.
    pub content_type: String,
    /// Size in bytes.
    pub size: i64,
    /// `/api/uploads/{id}/download/`: a stable link (message objects are cached and pushed
    /// live) that redirects an authorised caller to a fresh short-lived URL.
    pub download_url: String,
}

impl FileRef {
    /// The reference to an upload, with its stable download link.
    pub fn new(id: String, filename: String, content_type: String, size: i64) -> Self {
        let download_url = format!("/api/uploads/{id}/download/");
        Self {
            id,
            filename,
            content_type,
            size,
            download_url,
        }
    }
}

/// Rooms of up to this many members carry their members' read receipts and presence to each
/// other. In a larger room every member would hear of every other member's reading and coming
/// and going, N² frames for N members, so it carries neither (a member's own connections still
/// hear their receipts).
pub const SMALL_ROOM_MEMBERS: i64 = 50;

/// Longest message body, in characters (not bytes).
pub const MESSAGE_BODY_MAX: usize = 4000;
/// Longest `client_msg_id`, in characters.
pub const CLIENT_MSG_ID_MAX: usize = 64;

/// Why a message body is refused, or `None` when it is fine: it must not be blank, may have
/// at most [`MESSAGE_BODY_MAX`] characters, and may hold no control character but tab, line
/// feed and carriage return. The body is stored as written.
pub fn message_body_problem(body: &str) -> Option<String> {
    if body
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        Some("Control characters are not allowed (tab and line breaks are).".to_owned())
    } else if body.trim().is_empty() {
        Some("This field may not be blank.".to_owned())
    } else if body.chars().count() > MESSAGE_BODY_MAX {
        Some(format!("Must be at most {MESSAGE_BODY_MAX} characters."))
    } else {
        None
    }
}

/// A chat message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Message {
    /// Message id; increases with time within a room.
    pub id: i64,
    /// Room id.
    pub room: i64,
    /// Organization id.
    pub org: i64,
    /// Sender's user id (null once that account is gone).
    pub sender: Option<i64>,
    /// Text; empty once deleted.
    pub body: String,
    /// Attached file, or null.
    pub file: Option<FileRef>,
    /// The sender's idempotency key, if one was given.
    pub client_msg_id: Option<String>,
    /// True once deleted (the message stays in listings with an empty body).
    pub is_deleted: bool,
    /// When it was sent.
    pub created_at: DateTime<Utc>,
    /// When it was last edited, or null.
    pub edited_at: Option<DateTime<Utc>>,
    /// The root of the thread this message answers, or null for a message of the timeline.
    #[serde(default)]
    pub parent_id: Option<i64>,
    /// How many replies the thread has (on a root; 0 on other messages).
    #[serde(default)]
    pub reply_count: i64,
    /// When the newest reply was posted, or null.
    #[serde(default)]
    pub last_reply_at: Option<DateTime<Utc>>,
    /// The latest distinct repliers' user ids, newest first (at most three).
    #[serde(default)]
    pub repliers: Vec<i64>,
    /// Reactions, one entry per emoji in the order they were first added.
    #[serde(default)]
    pub reactions: Vec<ReactionCount>,
    /// Goes up by one with each reaction added or taken off: `reaction.added` and
    /// `reaction.removed` frames carry the value their change gave it (`version`), so a frame
    /// at or below what a client holds is older news.
    #[serde(default)]
    pub reactions_version: i64,
    /// User ids of the room members the text mentions by address (`@user@example.com`), in
    /// the order they appear; `@room` and `@here` are in the text.
    #[serde(default)]
    pub mentions: Vec<i64>,
    /// Position in its room (1, 2, 3, ... with no gaps, in id order). Not part of the API's
    /// message object; the bus carries it so that gateways can tell a gap from a quiet room.
    #[serde(skip)]
    pub seq: i64,
}

/// How often one emoji was added to a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReactionCount {
    /// The emoji, as Unicode (shortcodes are stored as the emoji they name).
    pub emoji: String,
    /// How many people added it.
    pub count: i64,
    /// Whether the reader is one of them (always false in WebSocket frames, which every reader
    /// shares; `reaction.added` and `reaction.removed` name who reacted).
    #[serde(default)]
    pub me: bool,
}

/// Read state and unread count of one room, for the unread-counts endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UnreadCount {
    /// Room id.
    pub room_id: i64,
    /// Room name.
    pub room_name: String,
    /// Messages from others after the read pointer, not counting deleted ones.
    pub unread_count: i64,
    /// How many of those mention the reader (by address, `@room` or `@here`).
    pub mentions: i64,
    /// Newest message marked read, or null.
    pub last_read_msg_id: Option<i64>,
    /// Newest message of the room, or null.
    pub last_msg_id: Option<i64>,
}

/// Why a line of text (a name, a title, an id) is refused, or `None`: control characters
/// (line breaks included), bidirectional overrides, embeddings and isolates (which make text
/// read differently from what it is), and text made only of invisible characters are.
/// Callers normalise it (NFC) and check its length.
pub fn text_problem(text: &str) -> Option<&'static str> {
    if text.chars().any(char::is_control) {
        Some("Control characters (line breaks included) are not allowed.")
    } else if text.chars().any(is_bidi_control) {
        Some("Bidirectional override and isolate characters are not allowed.")
    } else if !text.is_empty() && text.chars().all(is_invisible) {
        Some("Must contain visible characters.")
    } else {
        None
    }
}

/// U+202A..U+202E (embeddings, overrides) and U+2066..U+2069 (isolates).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Whitespace and the common zero-width and format characters.
fn is_invisible(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '\u{00AD}' | '\u{034F}' | '\u{115F}' | '\u{1160}' | '\u{180E}' | '\u{200B}'..='\u{200F}'
                | '\u{2060}'..='\u{2064}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
                | '\u{FFA0}'
        )
}

/// Whether `email` is an address mail can be sent to: RFC 5322 syntax with a dot-atom local
/// part (no quoted strings), no display name, and a dotted domain name of letters, digits and
/// hyphens (no address literal such as `[127.0.0.1]`); ASCII only, so look-alike fullwidth
/// characters cannot make a second account for the same person. Callers trim and lower-case
/// it first.
pub fn is_valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.rsplit_once('@') else {
        return false;
    };
    let atom = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~-".contains(c);
    let dot_atom = !local.is_empty()
        && local
            .split('.')
            .all(|part| !part.is_empty() && part.chars().all(atom));
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    let domain_name = domain.split('.').count() >= 2 && domain.split('.').all(label_ok);
    if !(email.is_ascii() && dot_atom && domain_name) {
        return false;
    }
    // The crate checks the rest of RFC 5322 (lengths among them).
    email_address::EmailAddress::parse_with_options(
        email,
        email_address::Options::default().without_display_text(),
    )
    .is_ok()
}

#[cfg(test)]
mod email_tests {
    use super::*;

    #[test]
    fn text_rules() {
        for bad in [
            "a\nb",
            "a\u{0}",
            "\u{202E}evil",
            "\u{200B}\u{200B}",
            "\u{3164}",
        ] {
            assert!(text_problem(bad).is_some(), "{bad:?}");
        }
        for ok in ["Acme Corp", "日本", "Zoë", "a\u{200D}b", ""] {
            assert_eq!(text_problem(ok), None, "{ok:?}");
        }
        assert!(message_body_problem("line\nbreak\tand tab").is_none());
        assert!(message_body_problem("nul\u{0}").is_some());
    }

    #[test]
    fn emails() {
        for ok in ["a@b.co", "first.last+tag@example.org"] {
            assert!(is_valid_email(ok), "{ok}");
        }
        for bad in [
            "",
            "a",
            "a@b",
            "@b.co",
            "a b@c.co",
            "Name <a@b.co>",
            "a@b.co.",
            "a@[127.0.0.1]",
            "\"a b\"@example.com",
            "\u{ff41}@example.com",
            "a..b@example.com",
            "a@-b.example.com",
            "a@b_c.example.com",
        ] {
            assert!(!is_valid_email(bad), "{bad}");
        }
    }
}
