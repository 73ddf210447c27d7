//! Domain types shared by the store and the services.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

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
    /// When it was created.
    pub created_at: DateTime<Utc>,
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
